"""libtrust's "pretty" JSON Web Signatures, as signed schema1 manifests use them.

A signed schema1 manifest is its payload with a ``signatures`` member spliced in
before the final ``}``. Each signature's base64url ``protected`` header records
``formatLength`` and ``formatTail``, so the payload that was signed is
``body[:formatLength] + formatTail`` (``ParsePrettySignature``). A signature covers
``protected + "." + base64url(payload)``; the key is the header's ``jwk``, or the
leaf certificate of its ``x5c`` chain (the chain itself is not checked, as in
``JSONSignature.Verify``).

The original registry stores the payload and each signature apart (libtrust
``Signatures()``: the compact JSON of one signature, its JWK re-serialized, sorted by
key ID then signature) and serves ``PrettySignature("signatures")`` of the payload
and the stored signatures again. Both serializations are reproduced byte for byte.

Errors: :class:`JWSFormatError` for an envelope libtrust cannot parse,
:class:`JWSVerificationError` for a signature that does not verify; callers map them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dockyard.manifest._gojson import GoStruct, JSONObject, field, has_field, loads, marshal
from dockyard.manifest._types import SIGNATURE_KEY

__all__ = [
    "JWSFormatError",
    "JWSVerificationError",
    "PrettySignature",
    "merge_signatures",
    "parse_pretty_signature",
]


class JWSFormatError(ValueError):
    """The envelope, a protected header or a key cannot be parsed."""


class JWSVerificationError(ValueError):
    """A signature is missing, uses an unknown algorithm, or does not verify."""


# --- base64 -------------------------------------------------------------------------

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_B64STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64url_encode(data: bytes) -> str:
    """libtrust ``joseBase64UrlEncode``: base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """libtrust ``joseBase64UrlDecode``: drops newlines and spaces, then pads."""
    text = text.replace("\n", "").replace(" ", "")
    if len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise ValueError("illegal base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _b64std_decode(text: str) -> bytes:
    """Go ``base64.StdEncoding.DecodeString`` (which skips CR and LF)."""
    text = text.replace("\r", "").replace("\n", "")
    if len(text) % 4 or not _B64STD.fullmatch(text):
        raise ValueError("illegal base64 data")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _utf8(text: str) -> bytes:
    # Go holds decoded JSON strings as UTF-8 with lone surrogates replaced by U+FFFD.
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")


# --- keys -----------------------------------------------------------------------------

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# curve name -> (curve, JWS algorithm, hash, octet length of a coordinate)
_CURVES: dict[str, tuple[ec.EllipticCurve, str, type[hashes.HashAlgorithm], int]] = {
    "P-256": (ec.SECP256R1(), "ES256", hashes.SHA256, 32),
    "P-384": (ec.SECP384R1(), "ES384", hashes.SHA384, 48),
    "P-521": (ec.SECP521R1(), "ES512", hashes.SHA512, 66),
}
_RSA_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
}


def key_id(key: PublicKey) -> str:
    """libtrust ``keyIDFromCryptoKey``: SHA-256 of the DER SubjectPublicKeyInfo,
    truncated to 240 bits, base32, in twelve colon-separated groups of four."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def _curve_name(key: ec.EllipticCurvePublicKey) -> str | None:
    for name, (curve, *_rest) in _CURVES.items():
        if key.curve.name == curve.name:
            return name
    return None


@dataclass(frozen=True, slots=True)
class JWK:
    """A public key from a ``jwk`` header, and the map libtrust re-serializes it as."""

    key: PublicKey
    kid: str
    members: dict[str, Any]


def _take_string(members: dict[str, Any], name: str, what: str) -> str:
    # libtrust stringFromMap: required, must be a string, removed from the map
    # (whatever is left over is kept as "extended" members and written back).
    if name not in members:
        raise JWSFormatError(f"{what}: {name!r} value not specified")
    value = members.pop(name)
    if not isinstance(value, str):
        raise JWSFormatError(f"{what}: {name!r} value must be a string")
    return value


def _check_kid(members: dict[str, Any], key: PublicKey, what: str) -> str:
    kid = key_id(key)
    if "kid" in members and _take_string(members, "kid", what) != kid:
        raise JWSFormatError(f"{what} ID does not match")
    return kid


def parse_jwk(raw: Any) -> JWK:
    """libtrust ``UnmarshalPublicKeyJWK`` for EC (P-256/384/521) and RSA keys."""
    if not isinstance(raw, dict):
        raise JWSFormatError("JWK Public Key type: 'kty' value not specified")
    try:
        marshal(raw)
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a number beyond float64
        raise JWSFormatError(f"decoding JWK Public Key JSON data: {exc}") from exc
    members = dict(raw)
    kty = _take_string(members, "kty", "JWK Public Key type")
    key: PublicKey
    if kty == "EC":
        what = "JWK EC Public Key"
        crv = _take_string(members, "crv", what)
        if crv not in _CURVES:
            raise JWSFormatError(f"{what} curve identifier not supported: {crv!r}")
        curve, _alg, _hash, octets = _CURVES[crv]
        coords = []
        for name in ("x", "y"):
            try:
                data = b64url_decode(_take_string(members, name, what))
            except ValueError as exc:
                raise JWSFormatError(f"{what} {name}-coordinate: {exc}") from exc
            if len(data) != octets:
                raise JWSFormatError(f"{what} {name}-coordinate: invalid number of octets")
            coords.append(int.from_bytes(data, "big"))
        try:
            key = ec.EllipticCurvePublicNumbers(coords[0], coords[1], curve).public_key()
        except ValueError as exc:
            # Go would take the point and fail to verify with it; nothing can verify.
            raise JWSVerificationError(f"{what}: point is not on the curve") from exc
        kid = _check_kid(members, key, what)
        members.update(
            kty="EC",
            kid=kid,
            crv=crv,
            x=b64url_encode(coords[0].to_bytes(octets, "big")),
            y=b64url_encode(coords[1].to_bytes(octets, "big")),
        )
        return JWK(key, kid, members)
    if kty == "RSA":
        what = "JWK RSA Public Key"
        try:
            n = int.from_bytes(b64url_decode(_take_string(members, "n", what)), "big")
            e_bytes = b64url_decode(_take_string(members, "e", what))
        except ValueError as exc:
            raise JWSFormatError(f"{what}: {exc}") from exc
        if len(e_bytes) > 4:
            raise JWSFormatError(f"{what} exponent: more than 4 octets")
        e = int.from_bytes(e_bytes, "big")
        try:
            key = rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise JWSVerificationError(f"{what}: unusable key: {exc}") from exc
        kid = _check_kid(members, key, what)
        if "d" in members:
            raise JWSFormatError(f"{what} cannot contain private exponent")
        members.update(
            kty="RSA",
            kid=kid,
            n=b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big")),
            e=b64url_encode(e.to_bytes((e.bit_length() + 7) // 8, "big")),
        )
        return JWK(key, kid, members)
    raise JWSFormatError(f"JWK Public Key type not supported: {kty!r}")


def _verify_with(key: PublicKey, alg: str, signature: bytes, data: bytes) -> None:
    """libtrust ``PublicKey.Verify``: ES* must match the curve, RS* is PKCS #1 v1.5."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            name = _curve_name(key)
            if name is None:
                raise JWSVerificationError("unsupported elliptic curve")
            _curve, expected_alg, hash_type, octets = _CURVES[name]
            if alg != expected_alg:
                raise JWSVerificationError(
                    f"EC Public Key with curve {name!r} does not support algorithm {alg!r}"
                )
            if len(signature) != 2 * octets:
                raise JWSVerificationError(
                    f"signature length is {len(signature)} octets long, should be {2 * octets}"
                )
            r = int.from_bytes(signature[:octets], "big")
            s = int.from_bytes(signature[octets:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_type()))
        else:
            rsa_hash = _RSA_ALGORITHMS.get(alg)
            if rsa_hash is None:
                raise JWSVerificationError(f"unable to verify signature: unknown algorithm {alg!r}")
            key.verify(signature, data, padding.PKCS1v15(), rsa_hash())
    except InvalidSignature as exc:
        raise JWSVerificationError("invalid signature") from exc


# --- signatures -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """One entry of ``signatures`` as libtrust holds it (``jsSignature``)."""

    jwk: JWK | None
    alg: str
    chain: tuple[str, ...]
    signature: str
    protected: str

    def sort_key(self) -> tuple[str, str]:
        """libtrust orders signatures by key ID, then signature.

        (libtrust dereferences a missing ``jwk`` and panics; here it sorts as "".)
        """
        return (self.jwk.kid if self.jwk is not None else "", self.signature)

    def go_value(self) -> GoStruct:
        """The ``jsSignature`` struct as ``encoding/json`` writes it (omitempty honoured)."""
        header: list[tuple[str, Any]] = []
        if self.jwk is not None:
            header.append(("jwk", self.jwk.members))
        header.append(("alg", self.alg))
        if self.chain:
            header.append(("x5c", list(self.chain)))
        members: list[tuple[str, Any]] = [
            ("header", GoStruct(header)),
            ("signature", self.signature),
        ]
        if self.protected:
            members.append(("protected", self.protected))
        return GoStruct(members)

    def public_key(self) -> PublicKey:
        """The verifying key: the leaf of ``x5c`` if present, else ``jwk``."""
        if self.chain:
            try:
                cert = x509.load_der_x509_certificate(_b64std_decode(self.chain[0]))
                key = cert.public_key()
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise JWSVerificationError(f"cannot read x5c certificate: {exc}") from exc
            if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                return key
            raise JWSVerificationError(f"public key type {type(key).__name__} is not supported")
        if self.jwk is not None:
            return self.jwk.key
        raise JWSVerificationError("missing public key")

    def verify(self, payload_b64: str) -> None:
        """Check this signature over ``protected + "." + payload_b64``."""
        try:
            raw = b64url_decode(self.signature)
        except ValueError as exc:
            raise JWSVerificationError(f"signature: {exc}") from exc
        data = _utf8(self.protected) + b"." + payload_b64.encode("ascii")
        _verify_with(self.public_key(), self.alg, raw, data)

    def stored_form(self) -> bytes:
        """libtrust ``Signatures()``: the compact JSON of this one signature."""
        return marshal(self.go_value()).encode("utf-8")


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise JWSFormatError(f"{what} must be a string")
    return value


def parse_signature(block: Any) -> Signature:
    """A ``jsParsedSignature`` (fields matched as Go matches them) with its key parsed."""
    if not isinstance(block, JSONObject):
        raise JWSFormatError("each signature must be a JSON object")
    header = field(block, "header")
    if header is not None and not isinstance(header, JSONObject):
        raise JWSFormatError("signature header must be a JSON object")
    jwk: JWK | None = None
    alg = ""
    chain: tuple[str, ...] = ()
    if header is not None:
        alg = _text(field(header, "alg"), "alg")
        raw_chain = field(header, "x5c", null_resets=True)
        if raw_chain is not None:
            if not isinstance(raw_chain, list) or not all(isinstance(c, str) for c in raw_chain):
                raise JWSFormatError("x5c must be an array of strings")
            chain = tuple(raw_chain)
        # A json.RawMessage: present at all (even null) means libtrust parses it.
        if has_field(header, "jwk"):
            jwk = parse_jwk(field(header, "jwk", null_resets=True))
    return Signature(
        jwk=jwk,
        alg=alg,
        chain=chain,
        signature=_text(field(block, "signature"), "signature"),
        protected=_text(field(block, "protected"), "protected"),
    )


def _format_int(value: Any) -> int | None:
    # libtrust readIntFromMap: a JSON number, truncated to an int.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # 1e400: Go refuses the number outright
    return int(value)


@dataclass(frozen=True, slots=True)
class PrettySignature:
    """A parsed prettyjws: the signed payload and its signatures (``JSONSignature``)."""

    payload: bytes
    signatures: tuple[Signature, ...]

    def verify(self) -> None:
        """Verify every signature (``JSONSignature.Verify``)."""
        payload_b64 = b64url_encode(self.payload)
        for signature in self.signatures:
            signature.verify(payload_b64)

    def stored_signatures(self) -> tuple[bytes, ...]:
        """libtrust ``Signatures()``: sorted, each as its own compact JSON."""
        ordered = sorted(self.signatures, key=Signature.sort_key)
        return tuple(s.stored_form() for s in ordered)


def parse_pretty_signature(content: bytes, document: JSONObject) -> PrettySignature:
    """libtrust ``ParsePrettySignature(content, "signatures")``.

    ``document`` is ``content`` already decoded. Missing or empty ``signatures``
    raise :class:`JWSVerificationError`; any other defect :class:`JWSFormatError`.
    """
    blocks = document.get(SIGNATURE_KEY)  # a Go map lookup: the exact key
    if SIGNATURE_KEY not in document or blocks is None:
        raise JWSVerificationError("missing signatures")
    if not isinstance(blocks, list):
        raise JWSFormatError("error unmarshalling signatures: not an array")
    if not blocks:
        raise JWSVerificationError("missing signatures")
    format_length = 0
    format_tail = b""
    signatures = []
    for block in blocks:
        signature = parse_signature(block)
        try:
            protected = loads(b64url_decode(signature.protected))
        except (ValueError, RecursionError) as exc:
            raise JWSFormatError(f"protected header: {exc}") from exc
        if not isinstance(protected, dict):
            raise JWSFormatError("missing formatted length")
        length = _format_int(protected.get("formatLength"))
        if length is None:
            raise JWSFormatError("missing formatted length")
        encoded_tail = protected.get("formatTail")
        if not isinstance(encoded_tail, str):
            raise JWSFormatError("missing formatted tail")
        try:
            tail = b64url_decode(encoded_tail)
        except ValueError as exc:
            raise JWSFormatError(f"base64 decode error on tail: {exc}") from exc
        # libtrust takes the first non-zero length and non-empty tail, then insists.
        if format_length == 0:
            format_length = length
        elif format_length != length:
            raise JWSFormatError("conflicting format length")
        if not format_tail:
            format_tail = tail
        elif format_tail != tail:
            raise JWSFormatError("conflicting format tail")
        signatures.append(signature)
    if format_length > len(content) or format_length < 0:
        raise JWSFormatError("invalid format length")
    return PrettySignature(content[:format_length] + format_tail, tuple(signatures))


# --- serving --------------------------------------------------------------------------

_SPACE = b" \t\n\r\v\f"


def detect_indent(content: bytes) -> str:
    """libtrust ``detectJSONIndent``: the whitespace before the first key of a
    ``{``-newline document, else ""."""
    if len(content) > 2 and content[:2] == b"{\n":
        quote_index = content.find(b'"', 1) - 1
        if quote_index > 0:
            return content[2 : quote_index + 1].decode("utf-8", "replace")
    return ""


def format_length(content: bytes) -> int:
    """libtrust ``NewJSONSignature``: where the payload is cut to splice in signatures
    (after its last non-space byte before the closing brace)."""
    stripped = content.rstrip(_SPACE)
    if not stripped.endswith(b"}"):
        raise ValueError("invalid json content")
    body = stripped[:-1].rstrip(_SPACE)
    if not body or body.endswith(b","):
        raise ValueError("invalid json content")
    if body.endswith(b"{"):  # libtrust would splice in '{,"signatures"...'
        raise ValueError("payload is an empty object")
    return len(body)


def merge_signatures(payload: bytes, signatures: Sequence[bytes]) -> bytes:
    """libtrust ``NewJSONSignature(payload, signatures...).PrettySignature("signatures")``."""
    try:
        document = loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"payload is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError("payload is not a JSON object")
    cut = format_length(payload)
    parsed = []
    for raw in signatures:
        try:
            parsed.append(parse_signature(loads(raw)))
        except (JWSFormatError, JWSVerificationError) as exc:
            raise ValueError(f"stored signature: {exc}") from exc
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"stored signature is not JSON: {exc}") from exc
    if not parsed:
        raise ValueError("no signatures")
    parsed.sort(key=Signature.sort_key)
    values = [s.go_value() for s in parsed]
    indent = detect_indent(payload)
    if indent:
        spliced = (
            f',\n{indent}"{SIGNATURE_KEY}": {marshal(values, prefix=indent, indent=indent)}\n}}'
        )
    else:
        spliced = f',"{SIGNATURE_KEY}":{marshal(values)}}}'
    return payload[:cut] + spliced.encode("utf-8")
