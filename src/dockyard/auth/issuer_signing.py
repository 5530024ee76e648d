"""The token issuer's signing key and certificate: loaded, or generated at first start."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from dockyard.auth.issuer_config import SECTION
from dockyard.auth.keys import (
    PrivateKey,
    algorithm_for,
    libtrust_key_id,
    load_certificates,
    spki_der,
)

__all__ = ["TokenSigner"]

# The issuer's one logger, whichever of its modules reports.
log = logging.getLogger("dockyard.auth.issuer")

_CERT_VALIDITY = dt.timedelta(days=3650)


# Signing


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically with exactly ``mode`` (umask does not apply)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _generate(cert_path: Path, key_path: Path, common_name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_file(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.warning(
        "generated token signing key %s and self-signed certificate %s (kid %s); "
        "point the registry's auth.token.rootcertbundle at the certificate",
        key_path,
        cert_path,
        libtrust_key_id(key.public_key()),
    )


def _ensure_signing_material(cert_path: Path, key_path: Path, common_name: str) -> None:
    """Generate key and certificate unless both exist; one process at a time."""
    if cert_path.exists() and key_path.exists():
        return
    for folder in {cert_path.parent, key_path.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(key_path.parent, os.O_RDONLY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        has_cert, has_key = cert_path.exists(), key_path.exists()
        if has_cert and has_key:
            return
        if has_cert or has_key:
            missing, present = ("key", "certificate") if has_cert else ("certificate", "key")
            raise ValueError(
                f"{SECTION}: option {missing!r}: file is missing while the {present} exists; "
                "provide both or neither (then both are generated)"
            )
        _generate(cert_path, key_path, common_name)
    finally:
        os.close(lock_fd)


class TokenSigner:
    """Signs JWTs with a private key, naming it by ``kid`` and ``x5c``."""

    def __init__(self, private_key: PrivateKey, chain: Sequence[x509.Certificate]) -> None:
        public = private_key.public_key()
        if not chain or spki_der(chain[0].public_key()) != spki_der(public):  # type: ignore[arg-type]
            raise ValueError("the certificate does not match the signing key")
        self.private_key = private_key
        self.public_key = public
        self.chain = tuple(chain)
        self.algorithm = algorithm_for(private_key)
        self.key_id = libtrust_key_id(public)
        self.x5c = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
            for c in chain
        ]

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> TokenSigner:
        """From PEM files; ``ValueError`` naming the ``key`` or ``certificate`` option."""
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{SECTION}: option 'key': cannot load {key_path}: {exc}") from None
        if not isinstance(
            key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise ValueError(f"{SECTION}: option 'key': unsupported key type in {key_path}")
        try:
            chain = load_certificates(cert_path)
            return cls(key, chain)
        except ValueError as exc:
            raise ValueError(f"{SECTION}: option 'certificate': {exc}") from None

    @classmethod
    def load_or_create(cls, cert_path: Path, key_path: Path, common_name: str) -> TokenSigner:
        """Load key and certificate, generating both first if neither exists."""
        try:
            _ensure_signing_material(cert_path, key_path, common_name)
        except OSError as exc:
            raise ValueError(
                f"{SECTION}: option 'key': cannot create signing key and certificate: {exc}"
            ) from None
        return cls.load(cert_path, key_path)

    def sign(self, claims: Mapping[str, Any], *, x5c: bool = True) -> str:
        """A compact JWS of ``claims`` with ``kid`` and (unless ``x5c=False``) ``x5c``."""
        headers: dict[str, Any] = {"typ": "JWT", "kid": self.key_id}
        if x5c:
            headers["x5c"] = self.x5c
        return jwt.encode(dict(claims), self.private_key, algorithm=self.algorithm, headers=headers)
