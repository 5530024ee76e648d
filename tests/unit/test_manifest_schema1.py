"""dockyard.manifest: schema1 manifests, libtrust JWS signatures, merging them back.

The signer below is a minimal libtrust (``NewJSONSignature`` + ``Sign`` /
``SignWithChain`` + ``PrettySignature``) written with ``cryptography``, so the
bodies are real prettyjws, byte for byte as Docker and distribution wrote them.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from dockyard.digest import Digest
from dockyard.errors import ManifestInvalid, ManifestUnverified, NameInvalid, TagInvalid
from dockyard.manifest import (
    SCHEMA1_LAYER,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    merge_schema1_signatures,
    parse_manifest,
    referenced_blobs,
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
TIME = "2015-09-11T04:13:48Z"

# --- a minimal libtrust ------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def jwk(public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, **extra: Any) -> dict[str, Any]:
    """libtrust ``toMap()``: kty, kid and the key's numbers; keys sorted as Go writes a map."""
    members: dict[str, Any] = dict(extra, kty="EC", kid=key_id(public))
    if isinstance(public, ec.EllipticCurvePublicKey):
        size = (public.curve.key_size + 7) // 8
        numbers = public.public_numbers()
        members.update(
            crv={256: "P-256", 384: "P-384", 521: "P-521"}[public.curve.key_size],
            x=b64url(numbers.x.to_bytes(size, "big")),
            y=b64url(numbers.y.to_bytes(size, "big")),
        )
    else:
        rsa_numbers = public.public_numbers()
        members.update(
            kty="RSA",
            n=b64url(rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")),
            e=b64url(rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")),
        )
    return dict(sorted(members.items()))


def raw_sign(key: PrivateKey, data: bytes, rsa_hash: str = "SHA256") -> tuple[str, bytes]:
    """libtrust ``PrivateKey.Sign``: ES* as r||s by curve, RS* with PKCS #1 v1.5."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        bits = key.curve.key_size
        algorithm, digest, size = {
            256: ("ES256", hashes.SHA256(), 32),
            384: ("ES384", hashes.SHA384(), 48),
            521: ("ES512", hashes.SHA512(), 66),
        }[bits]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return algorithm, r.to_bytes(size, "big") + s.to_bytes(size, "big")
    hash_type: dict[str, hashes.HashAlgorithm] = {
        "SHA256": hashes.SHA256(),
        "SHA384": hashes.SHA384(),
        "SHA512": hashes.SHA512(),
    }
    signature = key.sign(data, padding.PKCS1v15(), hash_type[rsa_hash])
    return "RS" + rsa_hash[3:], signature


@dataclass
class Signer:
    key: PrivateKey
    chain: list[x509.Certificate] | None = None  # SignWithChain: an x5c header, no jwk
    rsa_hash: str = "SHA256"
    jwk_extra: dict[str, Any] = field(default_factory=dict)


def detect_indent(payload: bytes) -> bytes:
    if len(payload) > 2 and payload[:2] == b"{\n":
        quote = payload.find(b'"', 1)
        if quote > 1:
            return payload[2:quote]
    return b""


def cut(payload: bytes) -> int:
    body = payload.rstrip(b" \t\r\n")[:-1].rstrip(b" \t\r\n")
    return len(body)


def signature_objects(payload: bytes, signers: list[Signer]) -> list[dict[str, Any]]:
    """``NewJSONSignature(payload)`` then ``Sign``/``SignWithChain`` for each signer."""
    length = cut(payload)
    protected_header = {
        "formatLength": length,
        "formatTail": b64url(payload[length:]),
        "time": TIME,
    }
    protected = b64url(json.dumps(protected_header, separators=(",", ":")).encode())
    signatures = []
    for signer in signers:
        alg, raw = raw_sign(signer.key, f"{protected}.{b64url(payload)}".encode(), signer.rsa_hash)
        header: dict[str, Any] = {}
        if signer.chain is None:
            header["jwk"] = jwk(signer.key.public_key(), **signer.jwk_extra)
        header["alg"] = alg
        if signer.chain is not None:
            chain = [cert.public_bytes(serialization.Encoding.DER) for cert in signer.chain]
            header["x5c"] = [base64.b64encode(der).decode() for der in chain]
        signatures.append({"header": header, "signature": b64url(raw), "protected": protected})
    return signatures


def sort_key(signature: dict[str, Any]) -> tuple[str, str]:
    kid = signature["header"].get("jwk", {}).get("kid", "")
    return kid, signature["signature"]


def pretty(payload: bytes, signatures: list[dict[str, Any]]) -> bytes:
    """``PrettySignature("signatures")``: splice the sorted signatures into the payload."""
    ordered = sorted(signatures, key=sort_key)
    indent = detect_indent(payload)
    head = payload[: cut(payload)]
    if not indent:
        return head + b',"signatures":' + json.dumps(ordered, separators=(",", ":")).encode() + b"}"
    block = json.dumps(ordered, indent=indent.decode()).replace("\n", "\n" + indent.decode())
    return head + b",\n" + indent + b'"signatures": ' + block.encode() + b"\n}"


def sign(payload: bytes, *signers: Signer) -> bytes:
    return pretty(payload, signature_objects(payload, list(signers)))


def stored_form(signature: dict[str, Any]) -> bytes:
    """libtrust ``Signatures()``: one signature as compact JSON."""
    return json.dumps(signature, separators=(",", ":")).encode()


def self_signed(key: PrivateKey, issuer_key: PrivateKey | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650 * 3))
        .sign(issuer_key or key, hashes.SHA256())
    )


# --- keys and manifests ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "P-256": ec.generate_private_key(ec.SECP256R1()),
        "P-384": ec.generate_private_key(ec.SECP384R1()),
        "P-521": ec.generate_private_key(ec.SECP521R1()),
        "RSA": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "other": ec.generate_private_key(ec.SECP256R1()),
    }


LAYER_A = str(Digest.of(b"layer-a"))
LAYER_B = str(Digest.of(b"layer-b"))


def schema1_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 1,
        "name": "library/hello-world",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": LAYER_A}, {"blobSum": LAYER_B}, {"blobSum": LAYER_A}],
        "history": [
            {"v1Compatibility": json.dumps({"id": "c", "parent": "b", "Size": 0})},
            {"v1Compatibility": json.dumps({"id": "b", "parent": "a", "Size": 960})},
            {"v1Compatibility": json.dumps({"id": "a", "created": "2015-08-06T23:53:22Z"})},
        ],
    }
    document.update(changes)
    return document


def payload_of(document: dict[str, Any] | None = None, indent: str | None = "   ") -> bytes:
    """A payload as Docker's ``json.MarshalIndent(m, "", "   ")`` lays it out."""
    document = schema1_document() if document is None else document
    if indent is None:
        return json.dumps(document, separators=(",", ":")).encode()
    return json.dumps(document, indent=indent).encode()


SIGNER_NAMES = ["P-256", "P-384", "P-521", "RSA"]


# --- valid signed manifests ------------------------------------------------------------------


@pytest.mark.parametrize("name", SIGNER_NAMES)
@pytest.mark.parametrize("use_chain", [False, True], ids=["jwk", "x5c"])
def test_signed_manifest_verifies(keys: dict[str, PrivateKey], name: str, use_chain: bool) -> None:
    key = keys[name]
    signer = Signer(key, chain=[self_signed(key)] if use_chain else None)
    payload = payload_of()
    signatures = signature_objects(payload, [signer])
    body = pretty(payload, signatures)

    manifest = parse_manifest(body, SCHEMA1_SIGNED)

    assert manifest.media_type == SCHEMA1_SIGNED
    assert manifest.payload == payload
    assert manifest.digest == Digest.of(payload)
    assert manifest.digest != Digest.of(body)
    assert manifest.signatures == (stored_form(signatures[0]),)
    assert [layer.digest for layer in manifest.layers] == [
        Digest.of(b"layer-a"),
        Digest.of(b"layer-b"),
        Digest.of(b"layer-a"),
    ]
    assert {layer.media_type for layer in manifest.layers} == {SCHEMA1_LAYER}
    assert manifest.config is None
    assert [d.digest for d in referenced_blobs(manifest)] == [
        Digest.of(b"layer-a"),
        Digest.of(b"layer-b"),
    ]


@pytest.mark.parametrize("name", SIGNER_NAMES)
@pytest.mark.parametrize("use_chain", [False, True], ids=["jwk", "x5c"])
def test_merge_reproduces_the_signed_manifest(
    keys: dict[str, PrivateKey], name: str, use_chain: bool
) -> None:
    key = keys[name]
    body = sign(payload_of(), Signer(key, chain=[self_signed(key)] if use_chain else None))
    manifest = parse_manifest(body, SCHEMA1_SIGNED)

    merged = merge_schema1_signatures(manifest.payload, manifest.signatures)

    assert merged == body
    again = parse_manifest(merged, SCHEMA1_SIGNED)
    assert again.digest == manifest.digest
    assert again.payload == manifest.payload
    assert again.signatures == manifest.signatures


@pytest.mark.parametrize("rsa_hash", ["SHA384", "SHA512"])
def test_rsa_rs384_and_rs512(keys: dict[str, PrivateKey], rsa_hash: str) -> None:
    body = sign(payload_of(), Signer(keys["RSA"], rsa_hash=rsa_hash))
    manifest = parse_manifest(body, SCHEMA1_SIGNED)
    assert json.loads(manifest.signatures[0])["header"]["alg"] == "RS" + rsa_hash[3:]


def test_multiple_signatures_sorted_by_key_id(keys: dict[str, PrivateKey]) -> None:
    signers = [Signer(keys[name]) for name in SIGNER_NAMES]
    payload = payload_of()
    signatures = signature_objects(payload, signers)
    body = pretty(payload, signatures)

    manifest = parse_manifest(body, SCHEMA1_SIGNED)

    assert manifest.signatures == tuple(stored_form(s) for s in sorted(signatures, key=sort_key))
    kids = [json.loads(s)["header"]["jwk"]["kid"] for s in manifest.signatures]
    assert kids == sorted(kids)
    merged = merge_schema1_signatures(manifest.payload, manifest.signatures)
    assert merged == body
    # The stored order does not matter: libtrust sorts again when serving.
    assert merge_schema1_signatures(manifest.payload, manifest.signatures[::-1]) == body
    assert parse_manifest(merged, SCHEMA1_SIGNED).digest == manifest.digest


def test_mixed_jwk_and_x5c_signatures(keys: dict[str, PrivateKey]) -> None:
    chain_key = keys["P-384"]
    body = sign(
        payload_of(),
        Signer(keys["P-256"]),
        Signer(chain_key, chain=[self_signed(chain_key), self_signed(keys["RSA"])]),
    )
    manifest = parse_manifest(body, SCHEMA1_SIGNED)
    assert len(manifest.signatures) == 2
    assert "x5c" in json.loads(manifest.signatures[0])["header"]  # no jwk sorts first
    assert merge_schema1_signatures(manifest.payload, manifest.signatures) == body


def test_x5c_takes_precedence_over_jwk(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    key = keys["P-256"]
    signatures = signature_objects(payload, [Signer(key, chain=[self_signed(key)])])
    signatures[0]["header"] = {"jwk": jwk(keys["other"].public_key()), **signatures[0]["header"]}
    manifest = parse_manifest(pretty(payload, signatures), SCHEMA1_SIGNED)
    assert list(json.loads(manifest.signatures[0])["header"]) == ["jwk", "alg", "x5c"]


@pytest.mark.parametrize("indent", [None, "\t", "  "], ids=["compact", "tab", "two"])
def test_other_payload_layouts_round_trip(keys: dict[str, PrivateKey], indent: str | None) -> None:
    payload = payload_of(indent=indent) + b"\n"
    body = sign(payload, Signer(keys["P-256"]))
    manifest = parse_manifest(body, SCHEMA1_SIGNED)
    assert manifest.payload == payload
    assert merge_schema1_signatures(manifest.payload, manifest.signatures) == body


def test_jwk_extra_members_are_kept_and_key_id_filled_in(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signer = Signer(keys["P-256"], jwk_extra={"use": "sig", "x-n": 1.0, "x-html": "<&>"})
    signatures = signature_objects(payload, [signer])
    expected = stored_form(signatures[0])
    del signatures[0]["header"]["jwk"]["kid"]  # optional on input; libtrust writes it back
    body = pretty(payload, signatures)
    manifest = parse_manifest(body, SCHEMA1_SIGNED)
    # Go writes 1.0 as 1 and escapes HTML characters.
    expected = expected.replace(b'"x-n":1.0', b'"x-n":1').replace(
        b'"<&>"', b'"\\u003c\\u0026\\u003e"'
    )
    assert manifest.signatures == (expected,)
    assert b'"kid":"' in manifest.signatures[0]


def test_unknown_header_members_are_dropped_as_libtrust_does(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    plain = stored_form(signatures[0])
    signatures[0]["header"]["typ"] = "JOSE"
    signatures[0]["extra"] = 1
    manifest = parse_manifest(pretty(payload, signatures), SCHEMA1_SIGNED)
    assert manifest.signatures == (plain,)


def test_content_type_variants_of_a_signed_body(keys: dict[str, PrivateKey]) -> None:
    body = sign(payload_of(), Signer(keys["P-256"]))
    for content_type in (None, "application/json", SCHEMA1_UNSIGNED, SCHEMA1_SIGNED):
        manifest = parse_manifest(body, content_type)
        assert manifest.media_type == SCHEMA1_SIGNED
        assert manifest.digest == Digest.of(payload_of())


# --- rejected signatures ---------------------------------------------------------------------


def unverified(body: bytes) -> ManifestUnverified:
    with pytest.raises(ManifestUnverified) as info:
        parse_manifest(body, SCHEMA1_SIGNED)
    return info.value


def not_valid(body: bytes) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(body, SCHEMA1_SIGNED)
    return info.value


@pytest.mark.parametrize("name", SIGNER_NAMES)
@pytest.mark.parametrize("use_chain", [False, True], ids=["jwk", "x5c"])
def test_tampered_payload_is_rejected(
    keys: dict[str, PrivateKey], name: str, use_chain: bool
) -> None:
    key = keys[name]
    body = sign(payload_of(), Signer(key, chain=[self_signed(key)] if use_chain else None))
    tampered = body.replace(b'"tag": "latest"', b'"tag": "latesT"', 1)
    assert tampered != body
    unverified(tampered)


@pytest.mark.parametrize("name", SIGNER_NAMES)
def test_tampered_signature_is_rejected(keys: dict[str, PrivateKey], name: str) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys[name])])
    raw = bytearray(base64.urlsafe_b64decode(signatures[0]["signature"] + "=="))
    raw[len(raw) // 2] ^= 0x01
    signatures[0]["signature"] = b64url(bytes(raw))
    assert "invalid signature" in str(unverified(pretty(payload, signatures)))


def test_one_bad_signature_among_good_ones_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"]), Signer(keys["RSA"])])
    signatures[1]["signature"] = signatures[1]["signature"][::-1]
    unverified(pretty(payload, signatures))


@pytest.mark.parametrize(
    ("alg", "signature"),
    [("none", ""), ("HS256", "c2lnbmF0dXJl"), ("ES384", None), ("RS256", None), ("", None)],
)
def test_wrong_or_unknown_algorithm_is_rejected(
    keys: dict[str, PrivateKey], alg: str, signature: str | None
) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["header"]["alg"] = alg
    if signature is not None:
        signatures[0]["signature"] = signature
    unverified(pretty(payload, signatures))


def test_rsa_key_with_es256_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["RSA"])])
    signatures[0]["header"]["alg"] = "ES256"
    unverified(pretty(payload, signatures))


def test_signature_by_another_key_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["header"]["jwk"] = jwk(keys["other"].public_key())
    unverified(pretty(payload, signatures))


def test_x5c_leaf_of_another_key_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(
        payload, [Signer(keys["P-256"], chain=[self_signed(keys["P-256"])])]
    )
    other = self_signed(keys["other"]).public_bytes(serialization.Encoding.DER)
    signatures[0]["header"]["x5c"] = [base64.b64encode(other).decode()]
    unverified(pretty(payload, signatures))


@pytest.mark.parametrize("x5c", [["bm90IGEgY2VydA=="], ["***"]])
def test_unreadable_x5c_is_rejected(keys: dict[str, PrivateKey], x5c: list[str]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["header"] = {"alg": "ES256", "x5c": x5c}
    unverified(pretty(payload, signatures))


def test_signature_without_key_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["header"] = {"alg": "ES256"}
    assert "missing public key" in str(unverified(pretty(payload, signatures)))


def test_wrong_signature_length_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["signature"] += "AA"
    assert "octets" in str(unverified(pretty(payload, signatures)))


def test_key_not_on_the_curve_is_rejected(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    key = signatures[0]["header"]["jwk"]
    del key["kid"]
    key["y"] = key["x"]
    unverified(pretty(payload, signatures))


@pytest.mark.parametrize("signatures", [None, []])
def test_missing_or_empty_signatures_are_unverified(signatures: list[Any] | None) -> None:
    payload = payload_of()
    body = payload[: cut(payload)] + b',\n   "signatures": ' + json.dumps(signatures).encode()
    unverified(body + b"\n}")


def test_signed_media_type_without_signatures_is_unverified() -> None:
    assert "missing signatures" in str(unverified(payload_of()))


# --- malformed envelopes ------------------------------------------------------------------


def test_key_id_mismatch_is_invalid(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["header"]["jwk"]["kid"] = key_id(keys["other"].public_key())
    assert "does not match" in str(not_valid(pretty(payload, signatures)))


@pytest.mark.parametrize(
    "change",
    [
        {"kty": "OKP"},
        {"crv": "P-192"},
        {"x": "AAAA"},
        {"x": "not base64!"},
        {"y": 5},
        {"kty": None},
    ],
)
def test_bad_jwk_is_invalid(keys: dict[str, PrivateKey], change: dict[str, Any]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["header"]["jwk"].update(change)
    if change.get("kty", "") is None:
        del signatures[0]["header"]["jwk"]["kty"]
    not_valid(pretty(payload, signatures))


def test_rsa_jwk_with_private_exponent_is_invalid(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["RSA"])])
    signatures[0]["header"]["jwk"]["d"] = "AQAB"
    assert "private exponent" in str(not_valid(pretty(payload, signatures)))


def protected_with(**members: Any) -> str:
    return b64url(json.dumps(members).encode())


def test_conflicting_format_length_is_invalid(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"]), Signer(keys["P-384"])])
    header = json.loads(base64.urlsafe_b64decode(signatures[1]["protected"] + "=="))
    header["formatLength"] -= 1
    signatures[1]["protected"] = protected_with(**header)
    assert "conflicting format length" in str(not_valid(pretty(payload, signatures)))


@pytest.mark.parametrize(
    ("protected", "reason"),
    [
        ("%%%", "protected header"),
        (b64url(b"not json"), "protected header"),
        (b64url(b"[1]"), "missing formatted length"),
        (protected_with(formatTail="Cn0"), "missing formatted length"),
        (protected_with(formatLength="12", formatTail="Cn0"), "missing formatted length"),
        (protected_with(formatLength=12), "missing formatted tail"),
        (protected_with(formatLength=12, formatTail="*"), "tail"),
        (protected_with(formatLength=10**9, formatTail="Cn0"), "invalid format length"),
        (protected_with(formatLength=-5, formatTail="Cn0"), "invalid format length"),
        (b64url(b"[" * 50_000 + b"]" * 50_000), "protected header"),
    ],
)
def test_bad_protected_header_is_invalid(
    keys: dict[str, PrivateKey], protected: str, reason: str
) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["protected"] = protected
    assert reason in str(not_valid(pretty(payload, signatures)))


def test_format_length_that_cuts_the_payload_wrong_is_invalid(
    keys: dict[str, PrivateKey],
) -> None:
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-256"])])
    signatures[0]["protected"] = protected_with(formatLength=20, formatTail=b64url(b"\n}"))
    assert "signed payload is not valid JSON" in str(not_valid(pretty(payload, signatures)))


@pytest.mark.parametrize("signatures", ['"x"', "{}", "[1]", '[{"header": []}]'])
def test_malformed_signatures_member_is_invalid(signatures: str) -> None:
    payload = payload_of()
    not_valid(payload[: cut(payload)] + b',\n   "signatures": ' + signatures.encode() + b"\n}")


# --- schema1 fields (unsigned, and signed) ---------------------------------------------------


def test_unsigned_schema1() -> None:
    body = payload_of()
    manifest = parse_manifest(body, SCHEMA1_UNSIGNED)
    assert manifest.media_type == SCHEMA1_UNSIGNED
    assert manifest.payload == body
    assert manifest.digest == Digest.of(body)
    assert manifest.signatures == ()
    assert len(manifest.layers) == 3


def without(name: str) -> dict[str, Any]:
    document = schema1_document()
    del document[name]
    return document


@pytest.mark.parametrize(
    ("document", "error", "reason"),
    [
        (schema1_document(schemaVersion=2), ManifestInvalid, "schema version 2"),
        (without("schemaVersion"), ManifestInvalid, "schema version 0"),
        (schema1_document(history=[]), ManifestInvalid, "cardinality 0 != 3"),
        (without("history"), ManifestInvalid, "cardinality"),
        (schema1_document(fsLayers={}), ManifestInvalid, "fsLayers"),
        (schema1_document(history=[1, 2, 3]), ManifestInvalid, "history[0]"),
        (
            schema1_document(history=[{"v1Compatibility": {}}] * 3),
            ManifestInvalid,
            "v1Compatibility",
        ),
        (
            schema1_document(fsLayers=[{"blobSum": "sha256:1"}] * 3),
            ManifestInvalid,
            "fsLayers[0].blobSum",
        ),
        (schema1_document(fsLayers=[{}] * 3), ManifestInvalid, "fsLayers[0].blobSum is missing"),
        (schema1_document(fsLayers=["x"] * 3), ManifestInvalid, "fsLayers[0]"),
        (without("architecture"), ManifestInvalid, "architecture"),
        (schema1_document(architecture=64), ManifestInvalid, "architecture"),
        (without("name"), NameInvalid, "repository name"),
        (schema1_document(name="Library/Hello"), NameInvalid, "repository name"),
        (schema1_document(name="a" * 256), NameInvalid, "repository name"),
        (schema1_document(name=["x"]), ManifestInvalid, "name must be a string"),
        (schema1_document(tag="-latest"), TagInvalid, "tag"),
        (schema1_document(tag="a" * 129), TagInvalid, "tag"),
        (schema1_document(tag=1), ManifestInvalid, "tag must be a string"),
    ],
)
def test_schema1_fields(document: dict[str, Any], error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as info:
        parse_manifest(payload_of(document), SCHEMA1_UNSIGNED)
    assert reason in str(info.value)


@pytest.mark.parametrize("name", ["localhost:5000/library/x", "registry.example.com/a__b/c-d"])
def test_schema1_name_may_carry_a_registry(name: str) -> None:
    parse_manifest(payload_of(schema1_document(name=name)), SCHEMA1_UNSIGNED)


def test_schema1_fields_are_checked_in_signed_manifests(keys: dict[str, PrivateKey]) -> None:
    payload = payload_of(schema1_document(history=[]))
    with pytest.raises(ManifestInvalid, match="cardinality"):
        parse_manifest(sign(payload, Signer(keys["P-256"])), SCHEMA1_SIGNED)


# --- merging --------------------------------------------------------------------------------


def test_merge_without_signatures_fails() -> None:
    with pytest.raises(ValueError, match="no signatures"):
        merge_schema1_signatures(payload_of(), [])


@pytest.mark.parametrize("payload", [b"[]", b"{", b'{"a": 1,}', b"{}"])
def test_merge_needs_a_json_object_payload(keys: dict[str, PrivateKey], payload: bytes) -> None:
    signature = stored_form(signature_objects(payload_of(), [Signer(keys["P-256"])])[0])
    with pytest.raises(ValueError):
        merge_schema1_signatures(payload, [signature])


@pytest.mark.parametrize("stored", [b"not json", b"[]", b'{"header": {"jwk": {"kty": "EC"}}}'])
def test_merge_rejects_unreadable_signatures(stored: bytes) -> None:
    with pytest.raises(ValueError, match="stored signature"):
        merge_schema1_signatures(payload_of(), [stored])


def test_merge_of_signatures_stored_by_distribution(keys: dict[str, PrivateKey]) -> None:
    # distribution wrote each signature with Go's json.Marshal; any JSON layout reads back.
    payload = payload_of()
    signatures = signature_objects(payload, [Signer(keys["P-384"]), Signer(keys["RSA"])])
    loose = [json.dumps(copy.deepcopy(s), indent=2).encode() for s in signatures]
    merged = merge_schema1_signatures(payload, loose)
    assert merged == pretty(payload, signatures)
    assert parse_manifest(merged, SCHEMA1_SIGNED).digest == Digest.of(payload)
