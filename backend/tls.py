"""TLS for the region endpoints: a server context, and a self-signed certificate on demand."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SELF_SIGNED_CERT = "tls-cert.pem"
SELF_SIGNED_KEY = "tls-key.pem"
VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)


_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,  # the TLS handshake (ECDSA)
    key_cert_sign=True,  # it is its own CA
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


class TlsError(RuntimeError):
    """Certificate or key unusable; the message names the file and the reason."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert, key):
        if not path.is_file():
            raise TlsError(f"cannot read {path}: no such file")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot use certificate {cert} with key {key}: {exc}") from None
    return context


def self_signed(data_dir: Path, host: str, *more_hosts: str) -> tuple[Path, Path]:
    """The data directory's self-signed certificate, made (or renewed) when needed.

    It names the listening host, the advertised host (``more_hosts``), localhost and the
    loopback addresses, so clients can verify it after trusting the file, e.g.
    ``ssl.create_default_context(cafile=...)``. A certificate that does not name them all
    (the advertised host changed) is made again, or clients would fail to verify it.
    """
    cert_path, key_path = data_dir / SELF_SIGNED_CERT, data_dir / SELF_SIGNED_KEY
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in dict.fromkeys((host, *more_hosts, "127.0.0.1", "::1")):
        if address in ("", "0.0.0.0", "::"):  # wildcards name no host
            continue
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            alt_names.append(x509.DNSName(address))
    if (
        cert_path.exists()
        and key_path.exists()
        and not _expiring(cert_path)
        and set(alt_names) <= _names(cert_path)
    ):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cachier {host}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Key usage and identifiers: strict verifiers (Python 3.13's default context sets
        # VERIFY_X509_STRICT; newer OpenSSL checks more under it) want them on a CA
        # certificate, and clients trust this one as their CA.
        .add_extension(_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _expiring(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < RENEW_BEFORE


def _names(cert_path: Path) -> set[x509.GeneralName]:
    """The subject alternative names of a certificate file (none if unreadable)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return set()
