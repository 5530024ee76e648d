"""Keys, certificates and algorithms for token signing and verification.

- :func:`libtrust_key_id`: the key ID docker's libtrust derives from a public key, which
  distribution matches against a token's ``kid`` header.
- :func:`verify_chain`: an ``x5c`` certificate chain must lead to a trusted root
  (signatures and validity dates of every link checked, intermediates must be CAs,
  as Go's ``x509.Certificate.Verify`` with ``ExtKeyUsageAny``).
- :func:`key_fits`: which public keys may verify which JWS algorithm.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

__all__ = [
    "ALGORITHMS",
    "PublicKey",
    "algorithm_for",
    "key_fits",
    "libtrust_key_id",
    "load_certificates",
    "verify_chain",
]

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

#: The JWS algorithms accepted on tokens: asymmetric only (never ``none`` or ``HS*``).
ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)

_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}

_MAX_CHAIN = 10


def spki_der(key: PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def libtrust_key_id(key: PublicKey) -> str:
    """libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
    base32 without padding, in 12 groups of 4 characters joined by ``:``."""
    digest = hashlib.sha256(spki_der(key)).digest()[:30]
    encoded = base64.b32encode(digest).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def as_public_key(key: object) -> PublicKey | None:
    """``key`` if it is a supported asymmetric public key, else None."""
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    return None


def key_fits(algorithm: str, key: PublicKey) -> bool:
    """True if ``key`` is the kind of key ``algorithm`` verifies with (no confusion)."""
    if algorithm in {"RS256", "RS384", "RS512"}:
        return isinstance(key, rsa.RSAPublicKey)
    curve = _EC_CURVES.get(algorithm)
    if curve is not None:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def algorithm_for(key: PrivateKey) -> str:
    """The JWS algorithm to sign with ``key``."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for name, curve in _EC_CURVES.items():
            if isinstance(key.curve, curve):
                return name
        raise ValueError(f"unsupported elliptic curve {key.curve.name}")
    return "EdDSA"


def load_certificates(path: Path) -> list[x509.Certificate]:
    """All certificates of a PEM bundle; ``ValueError`` if unreadable or empty."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{path}: no valid PEM certificates: {exc}") from None
    if not certs:
        raise ValueError(f"{path}: no certificates")
    return certs


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ValueError(f"certificate {cert.subject.rfc4514_string()!r} is not valid now")


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Verify that ``chain[0]`` (the leaf) leads to one of ``roots``; return the leaf.

    The other certificates of ``chain`` are candidate intermediates, in any order. A
    leaf that is itself a root is trusted. Every certificate on the path, the root
    included, must be valid at ``now``; every intermediate must be a CA within its path
    length. Raises ``ValueError`` otherwise.
    """
    if not chain:
        raise ValueError("empty certificate chain")
    if len(chain) > _MAX_CHAIN:
        raise ValueError("certificate chain too long")
    now = now or dt.datetime.now(dt.UTC)
    current = chain[0]
    used = {0}
    intermediates = 0  # intermediates on the path so far (below the next issuer)
    while True:
        _valid_at(current, now)
        if current in roots:
            return chain[0]
        for root in roots:
            if _issued_by(current, root) and _path_ok(root, intermediates, require_ca=False):
                _valid_at(root, now)
                return chain[0]
        for index, candidate in enumerate(chain):
            if (
                index not in used
                and _issued_by(current, candidate)
                and _path_ok(candidate, intermediates, require_ca=True)
            ):
                used.add(index)
                intermediates += 1
                current = candidate
                break
        else:
            raise ValueError("certificate chain does not lead to a trusted root")


def _path_ok(issuer: x509.Certificate, intermediates: int, *, require_ca: bool) -> bool:
    """Whether ``issuer`` may sign with ``intermediates`` CA certificates below it."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return not require_ca
    except Exception:  # malformed or duplicate extensions: not a usable issuer
        return False
    if require_ca and not constraints.ca:
        return False
    return constraints.path_length is None or intermediates <= constraints.path_length
