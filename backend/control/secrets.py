"""Secrets at rest: the data directory's key file, password encryption, SSO secrets.

One random master key lives in ``secret.key`` (mode 0600). Independent keys are derived
from it: a Fernet key that encrypts credential passwords in the database, an HMAC key
from which each cache's dashboard SSO secret is computed, an AES-256-GCM key for the
warm-restart snapshots of cache contents (``backend/snapshot.py``), and an HMAC key for
the status probes' passwords (``backend/monitor.py``). The database stores
only a random nonce and a SHA-256 hash of the SSO secret, so a copy of the database alone
reveals neither passwords nor dashboard URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE = "secret.key"
_USERNAME_ALPHABET = string.ascii_uppercase + string.digits


class KeyFileError(RuntimeError):
    """The key file exists but is unusable (wrong size, unreadable, too open)."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class Secrets:
    def __init__(self, master_key: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(master_key, b"cachier passwords")))
        self._sso_key = _derive(master_key, b"cachier sso")
        self._snapshot_key = _derive(master_key, b"cachier warm restart snapshot")
        self._probe_key = _derive(master_key, b"cachier status probes")

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Secrets:
        path = data_dir / KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls._load(path)
        master = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(master))
        return cls(master)

    @classmethod
    def _load(cls, path: Path) -> Secrets:
        try:
            master = base64.b64decode(path.read_bytes(), validate=True)
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc}") from None
        if len(master) != 32:
            raise KeyFileError(f"key file {path} does not hold a 32-byte key")
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return cls(master)

    # -- passwords ----------------------------------------------------------------------
    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)

    # -- cache contents at rest ---------------------------------------------------------
    def snapshot_key(self) -> bytes:
        """The AES-256-GCM key of warm-restart snapshots (tenants' items at rest)."""
        return self._snapshot_key

    # -- the status monitor's probes ---------------------------------------------------
    def probe_key(self) -> bytes:
        """The key the probes' passwords are derived from (``monitor.probe_caches``): every
        process sharing the key file computes the same ones, so whichever process leads
        the monitor is accepted by every other's proxies, and nothing is stored."""
        return self._probe_key

    # -- SSO ----------------------------------------------------------------------------
    def sso_secret(self, cache_id: str, nonce: str) -> str:
        """The 256-bit dashboard secret of a cache, recomputable only with the key file."""
        mac = hmac.new(self._sso_key, f"{cache_id}:{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sso_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def new_username() -> str:
    return "".join(secrets.choice(_USERNAME_ALPHABET) for _ in range(10))


def new_password() -> str:
    """32 hex characters: 128 bits of entropy, safe in any config var or shell."""
    return secrets.token_hex(16)


def new_cache_id() -> str:
    return "c" + secrets.token_hex(5)
