"""Run pymemcache's own integration tests against cachier.

    python bench/pymemcache_suite.py            # prints pytest's summary; exit status is pytest's
    python bench/pymemcache_suite.py -k misc -v # extra arguments go to pytest

pymemcache ships its tests (``pymemcache/test/``) in the wheel. They connect without
logging in, so this copies them to a temp dir and makes their ``socket_module`` one whose
``connect`` first sends cachier's ASCII login (``set <username> 0 0 <len>`` + password),
then runs ``pytest -m integration test_integration.py`` against a cachier Service started
in this process on loopback, with a fresh tenant. Nothing else in the tests is changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import CacheHandle, RunningService, make_config  # noqa: E402

AUTH_SOCKET = '''"""The socket module, whose sockets log in to cachier as they connect."""
import os
import socket as _socket
from socket import *  # noqa: F403


class socket(_socket.socket):  # noqa: N801
    def connect(self, address):
        super().connect(address)
        user = os.environ["CACHIER_USER"].encode()
        password = os.environ["CACHIER_PASSWORD"].encode()
        self.sendall(b"set %s 0 0 %d\\r\\n%s\\r\\n" % (user, len(password), password))
        reply = b""
        while not reply.endswith(b"\\n"):
            chunk = self.recv(1)
            if not chunk:
                break
            reply += chunk
        if reply != b"STORED\\r\\n":
            raise OSError(f"cachier login refused: {reply!r}")
'''


def main(argv: list[str]) -> int:
    import pymemcache

    tests = Path(pymemcache.__file__).parent / "test"
    if not (tests / "test_integration.py").exists():
        print(f"pymemcache's tests are not installed under {tests}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as data:
        suite = Path(work) / "suite"
        shutil.copytree(tests, suite)
        (suite / "authsocket.py").write_text(AUTH_SOCKET)
        conftest = suite / "conftest.py"
        text = conftest.read_text()
        if "socket_modules = [socket]" not in text:
            print("pymemcache's conftest changed: cannot inject the login", file=sys.stderr)
            return 2
        injected = "socket_modules = [__import__('authsocket')]"
        conftest.write_text(text.replace("socket_modules = [socket]", injected))
        running = RunningService(make_config(Path(data))).start()
        try:
            handle = CacheHandle(running.create_cache("pymemcache-suite"))
            host, port = handle.endpoint
            env = os.environ | {
                "CACHIER_USER": handle.username,
                "CACHIER_PASSWORD": handle.password,
            }
            command = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(suite),
                "-m",
                "integration",
                "test_integration.py",
                "--server",
                host,
                "--port",
                str(port),
                *argv,
            ]
            return subprocess.run(command, cwd=suite, env=env, check=False).returncode
        finally:
            running.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
