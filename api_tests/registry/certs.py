"""Test PKI: a self-signed CA and certificates it signs (cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: str, issuer: str, public_key: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2)))


def make_ca(directory: Path) -> tuple[Path, Path]:
    """(ca.crt, ca.key) in directory."""
    key = _key()
    cert = (_builder("dockerd-py test CA", "dockerd-py test CA", key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    _write_cert(cert, directory / "ca.crt")
    _write_key(key, directory / "ca.key")
    return directory / "ca.crt", directory / "ca.key"


def make_server_cert(directory: Path, ca_crt: Path, ca_key: Path, ip: str) -> tuple[Path, Path]:
    """(server.crt, server.key) for an IP address, signed by the CA."""
    ca_private = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = _key()
    cert = (_builder(ip, "dockerd-py test CA", key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                           critical=False)
            .sign(ca_private, hashes.SHA256()))  # type: ignore[arg-type]
    _write_cert(cert, directory / "server.crt")
    _write_key(key, directory / "server.key")
    return directory / "server.crt", directory / "server.key"


def make_signing_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for signing registry tokens (no EKU: any use)."""
    key = _key()
    cert = _builder("token-signer", "token-signer", key.public_key()).sign(key, hashes.SHA256())
    _write_cert(cert, directory / "token.crt")
    _write_key(key, directory / "token.key")
    return directory / "token.crt", directory / "token.key"
