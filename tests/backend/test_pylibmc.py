"""pylibmc (libmemcached) over the binary protocol with SASL PLAIN, set up as the README says.

pylibmc's PyPI wheel carries its own libsasl2, built to look for its plugins in
``/usr/lib64/sasl2:/etc/sasl2``. Debian keeps the PLAIN plugin (``libsasl2-modules``) in
``/usr/lib/<multiarch>/sasl2``, so without ``SASL_PATH`` every login fails with
``error 40 ... FAILED TO SEND AUTHENTICATION TO SERVER``. libsasl2 reads ``SASL_PATH``
once, when pylibmc is imported, hence the module fixture below sets it before importing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.backend.test_binary import add_credential
from tests.conftest import CacheHandle

if importlib.util.find_spec("pylibmc") is None:  # not imported here: SASL_PATH comes first
    pytest.skip("pylibmc is in the test extra: pip install -e '.[test]'", allow_module_level=True)


def sasl_path() -> str:
    """Where the PLAIN plugin is: ``SASL_PATH`` if set, else Debian's multiarch directory."""
    if os.environ.get("SASL_PATH"):
        return os.environ["SASL_PATH"]
    return f"/usr/lib/{sysconfig.get_config_var('MULTIARCH') or 'x86_64-linux-gnu'}/sasl2"


def require_plain_plugin() -> str:
    path = sasl_path()
    if not any(Path(directory, "libplain.so.2").exists() for directory in path.split(":")):
        message = f"no SASL PLAIN plugin in {path} (Debian package libsasl2-modules)"
        if os.environ.get("CI"):
            pytest.fail(message + ": .ci/run must install it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def pylibmc() -> Iterator[ModuleType]:
    path = require_plain_plugin()
    if "pylibmc" in sys.modules and os.environ.get("SASL_PATH") != path:
        pytest.fail("pylibmc was imported before SASL_PATH was set: its logins would fail")
    previous = os.environ.get("SASL_PATH")
    os.environ["SASL_PATH"] = path
    import pylibmc

    yield pylibmc
    if previous is None:
        os.environ.pop("SASL_PATH", None)


def client_for(
    pylibmc: ModuleType,
    cache: CacheHandle,
    username: str | None = None,
    password: str | None = None,
    **behaviors: int,
):
    """The README's recipe."""
    return pylibmc.Client(
        [cache.info["servers"]],
        binary=True,
        username=username or cache.username,
        password=password or cache.password,
        behaviors=behaviors,
    )


def test_pylibmc_logs_in_with_sasl_and_round_trips_values(pylibmc, cache: CacheHandle) -> None:
    client = client_for(pylibmc, cache)
    values = {"text": "héllo", "raw": b"\x00\xff", "number": 42, "object": {"a": [1, 2]}}
    for key, value in values.items():
        assert client.set(key, value) is True
    assert client.get_multi(list(values)) == values
    assert client.incr("number") == 43
    assert client.delete("text") is True
    assert client.get("text") is None


def test_pylibmc_wrong_password_raises_auth_failure(pylibmc, cache: CacheHandle) -> None:
    client = client_for(pylibmc, cache, password="wrong")
    with pytest.raises(pylibmc.Error, match="AUTHENTICATION FAILURE"):
        client.get("k")


def test_the_wheels_libsasl2_cannot_log_in_without_sasl_path(cache: CacheHandle) -> None:
    """Why the README says to set SASL_PATH: checked, so the advice goes when the cause does."""
    origin = Path(importlib.util.find_spec("pylibmc").origin).parent.parent
    if not list(origin.glob("pylibmc.libs/libsasl2-*")):
        pytest.skip("this pylibmc uses the system's libsasl2 (built from source)")
    script = (
        "import pylibmc, sys\n"
        "c = pylibmc.Client([sys.argv[1]], binary=True, username=sys.argv[2], "
        "password=sys.argv[3])\n"
        "c.set('k', 'v')\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "SASL_PATH"}
    result = subprocess.run(
        [sys.executable, "-c", script, cache.info["servers"], cache.username, cache.password],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "error 40 from memcached_set: FAILED TO SEND AUTHENTICATION TO SERVER" in result.stderr


# --- what libmemcached does with a refused write or flush (status 0x20) ---------------------


def reads_until_they_work(client, key: str, within: float) -> tuple[list[str], float]:
    """Read ``key`` until a read succeeds; the errors seen and the seconds it took."""
    errors: list[str] = []
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            client.get(key)
        except Exception as exc:  # pylibmc.ServerDown: the server is marked dead
            errors.append(type(exc).__name__)
            time.sleep(0.05)
        else:
            return errors, time.monotonic() - start
    raise AssertionError(f"reads still failing after {within} s: {errors[-1:]}")


def test_refused_write_raises_then_reads_fail_until_retry_timeout(
    pylibmc, cache: CacheHandle
) -> None:
    client_for(pylibmc, cache).set("k", "v")
    credential = add_credential(cache, write=False)
    reader = client_for(pylibmc, cache, credential["username"], credential["password"])
    assert reader.get("k") == "v"
    with pytest.raises(pylibmc.Error, match="error 41 from memcached_set"):  # AUTH_FAILURE
        reader.set("k", "changed")
    # libmemcached takes 0x20 for a failed login and disables the server for its
    # retry_timeout (2 s by default): every read meanwhile is ServerDown, not a miss.
    errors, recovered = reads_until_they_work(reader, "k", within=6)
    assert errors and set(errors) == {"ServerDown"}
    assert 1.5 < recovered < 4.5
    assert reader.get("k") == "v"


def test_refused_flush_reports_success_and_disables_the_server(pylibmc, cache: CacheHandle) -> None:
    owner = client_for(pylibmc, cache)
    owner.set("k", "v")
    credential = add_credential(cache, flush=False)
    limited = client_for(
        pylibmc, cache, credential["username"], credential["password"], retry_timeout=1
    )
    # libmemcached's flush does not look at the answer's status: True, yet nothing flushed.
    assert limited.flush_all() is True
    assert owner.get("k") == "v"
    errors, recovered = reads_until_they_work(limited, "k", within=4)
    assert set(errors) == {"ServerDown"}
    assert recovered < 2.5  # retry_timeout=1 shortens the dead time


def test_django_pylibmc_cache_with_the_readmes_options(pylibmc, cache: CacheHandle) -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.core.cache.backends.memcached import PyLibMCCache

    options = {"binary": True, "username": cache.username, "password": cache.password}
    django = PyLibMCCache(cache.info["servers"], {"OPTIONS": options})
    django.set("profile", {"name": "Ada"})
    assert django.get("profile") == {"name": "Ada"}
    assert django.delete("profile") is True
    django.close()
