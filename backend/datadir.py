"""The data directory holds the key file, the database and TLS keys: only its owner may
read it. It is made mode 0700 and every file in it 0600, and an existing directory or file
left more open (by an older cachier, a restore, a umask) is closed, with a log line."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE, FILE_MODE = 0o700, 0o600


def make_private(data_dir: Path) -> list[str]:
    """Create ``data_dir`` if needed and tighten its modes; returns what was changed."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fixed = []
    for path in [data_dir, *sorted(data_dir.iterdir())]:
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) and path == data_dir:
            wanted = DIR_MODE
        elif stat.S_ISREG(info.st_mode):
            wanted = FILE_MODE
        else:
            continue  # a symlink or sub-directory is the operator's own arrangement
        if stat.S_IMODE(info.st_mode) & ~wanted:
            os.chmod(path, wanted)
            fixed.append(f"{path} {stat.S_IMODE(info.st_mode):o} -> {wanted:o}")
    for change in fixed:
        log.warning("data directory: made private: %s", change)
    return fixed


def create_private_file(path: Path) -> None:
    """An empty file of mode 0600, unless it exists. SQLite gives its -wal and -shm files
    the database file's mode, so a database created this way stays private."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
