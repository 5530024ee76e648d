"""Properties of what dockyard parses from clients, checked with hypothesis.

Digests, repository names, ``Range``/``Content-Range``/``Content-Length``, the signed
``_state`` upload token and manifests: whatever the input, the parser answers or
raises its domain error, nothing else. Pure functions, so they run in-process.

``DOCKYARD_FUZZ_EXAMPLES`` raises the number of examples per property (default 100);
hypothesis prints the seed of a failing run (replay it with ``--hypothesis-seed``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dockyard.api.blobs import _byte_range
from dockyard.api.errors import ErrorCode, RegistryError
from dockyard.api.params import MAX_COUNT, content_length, parse_content_range, parse_digest
from dockyard.api.state import UploadState, UploadStateSigner
from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    NameInvalid,
    RegistryFault,
    SizeInvalid,
)
from dockyard.manifest import KNOWN_MEDIA_TYPES, parse_manifest
from dockyard.names import MAX_NAME_LENGTH, is_valid_repository_name
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage import paths
from dockyard.storage.drivers.factory import create_driver

settings.register_profile(
    "dockyard",
    max_examples=int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "100")),
    deadline=None,  # a shared CI machine; no timing assertions
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("dockyard")

HEX = "0123456789abcdef"
# Numbers as clients may send them: small, around the edges, and longer than the 4300
# digits Python's int() refuses to convert (every number is bounded before conversion).
DIGITS = st.one_of(
    st.integers(min_value=0, max_value=2**70).map(str),
    st.text(alphabet=string.digits, min_size=1, max_size=6000),
)
# What str.isdigit() calls a digit and int() may refuse: superscripts, other scripts.
UNICODE_DIGITS = st.text(alphabet="0123456789²³¹٣۴߅௯", min_size=1, max_size=8)


def _header_request(method: str, **headers: str) -> Any:
    return make_mocked_request(method, "/v2/x/blobs/uploads/u", headers=headers)


# -- digests ---------------------------------------------------------------------------

ALGORITHM_LENGTHS = {"sha256": 64, "sha512": 128}


@st.composite
def digests(draw: st.DrawFn) -> str:
    algorithm = draw(st.sampled_from(sorted(ALGORITHM_LENGTHS)))
    length = ALGORITHM_LENGTHS[algorithm]
    return f"{algorithm}:" + draw(st.text(alphabet=HEX, min_size=length, max_size=length))


@given(digests())
def test_a_digest_formats_as_it_was_parsed(text: str) -> None:
    digest = Digest.parse(text)
    assert str(digest) == text
    assert Digest.parse(str(digest)) == digest


@given(st.binary(max_size=256), st.sampled_from(sorted(ALGORITHM_LENGTHS)))
def test_a_computed_digest_parses_back(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert Digest.parse(str(digest)) == digest


def _mutations(text: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, len(text) - 1).map(lambda i: text[:i] + text[i + 1 :]),
        st.tuples(st.integers(0, len(text)), st.characters()).map(
            lambda p: text[: p[0]] + p[1] + text[p[0] :]
        ),
        st.tuples(st.integers(0, len(text) - 1), st.characters()).map(
            lambda p: text[: p[0]] + p[1] + text[p[0] + 1 :]
        ),
    )


@given(st.one_of(st.text(), digests().flatmap(_mutations), st.from_regex(r"[a-z0-9+._-]+:\w+")))
def test_anything_else_is_an_invalid_digest(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except InvalidDigest:
        with pytest.raises(DigestInvalid):
            parse_digest(text)
        return
    # Accepted: then it is exactly a well-formed digest, safe in a storage path.
    assert str(digest) == text
    assert len(digest.hex) == ALGORITHM_LENGTHS[digest.algorithm]
    assert set(digest.hex) <= set(HEX)
    assert paths.blob_data_path(digest).count("..") == 0


# -- repository names ------------------------------------------------------------------

COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAMES = st.from_regex(rf"\A{COMPONENT}(?:/{COMPONENT}){{0,4}}\Z").filter(
    lambda name: len(name) <= MAX_NAME_LENGTH
)


@given(NAMES)
def test_names_of_the_grammar_are_valid(name: str) -> None:
    assert is_valid_repository_name(name)


@given(st.one_of(st.text(), NAMES.flatmap(_mutations), st.text(alphabet="a./_-", max_size=20)))
def test_a_name_is_valid_only_if_it_is_safe_in_a_path(name: str) -> None:
    namespace = Namespace(create_driver("inmemory", {}), RegistryOptions())
    try:
        repo = namespace.repository(name)
    except NameInvalid:
        assert not is_valid_repository_name(name)
        return
    assert repo.name == name
    assert len(name) <= MAX_NAME_LENGTH
    parts = name.split("/")
    assert all(parts) and not {".", ".."} & set(parts), name
    assert paths.repository_path(name).endswith("/repositories/" + name)


# -- ranges and lengths ----------------------------------------------------------------

SIZES = st.integers(min_value=0, max_value=2**40)


@given(
    st.one_of(
        st.text(),
        st.builds("bytes={}-{}".format, DIGITS | st.just(""), DIGITS | st.just("")),
        st.builds("bytes={}-{}".format, UNICODE_DIGITS, UNICODE_DIGITS),
    ),
    SIZES,
)
def test_a_range_is_satisfiable_or_416(header: str, size: int) -> None:
    try:
        result = _byte_range(header, size)
    except RegistryError as exc:
        assert exc.code == ErrorCode.RANGE_INVALID
        assert exc.status == 416
        assert exc.headers["Content-Range"] == f"bytes */{size}"
        return
    if result is not None:  # None: the whole blob
        offset, count = result
        assert offset >= 0 and count >= 1 and offset + count <= size


@given(st.data(), st.integers(min_value=1, max_value=2**40))
def test_a_satisfiable_range_is_honoured_exactly(data: st.DataObject, size: int) -> None:
    first = data.draw(st.integers(0, size - 1))
    last = data.draw(st.integers(first, size - 1))
    assert _byte_range(f"bytes={first}-{last}", size) == (first, last - first + 1)
    assert _byte_range(f"bytes={first}-", size) == (first, size - first)
    suffix = data.draw(st.integers(1, 2 * size))
    assert _byte_range(f"bytes=-{suffix}", size) == (size - min(suffix, size), min(suffix, size))


@given(
    st.one_of(
        st.text(),
        st.builds("{}-{}".format, DIGITS, DIGITS),
        st.builds("{}-{}".format, UNICODE_DIGITS, UNICODE_DIGITS),
        st.builds("bytes {}-{}/{}".format, DIGITS, DIGITS, DIGITS | st.just("*")),
    )
)
def test_a_content_range_parses_or_is_an_invalid_upload(header: str) -> None:
    assume("\r" not in header and "\n" not in header)
    try:
        result = parse_content_range(_header_request("PATCH", **{"Content-Range": header}))
    except BlobUploadInvalid:
        return
    except RegistryError as exc:  # offsets past int64 can never match an upload: 416
        assert exc.code is ErrorCode.RANGE_INVALID
        return
    assert result is not None
    start, end = result
    assert 0 <= start <= MAX_COUNT and 0 <= end <= MAX_COUNT


@given(st.integers(min_value=0, max_value=MAX_COUNT), st.integers(min_value=0, max_value=MAX_COUNT))
def test_a_content_range_round_trips(start: int, end: int) -> None:
    request = _header_request("PATCH", **{"Content-Range": f"{start}-{end}"})
    assert parse_content_range(request) == (start, end)


@given(st.integers(min_value=MAX_COUNT + 1), st.integers(min_value=0, max_value=MAX_COUNT))
def test_a_content_range_past_int64_is_416(big: int, small: int) -> None:
    for header in (f"{big}-{small}", f"{small}-{big}"):
        with pytest.raises(RegistryError) as raised:
            parse_content_range(_header_request("PATCH", **{"Content-Range": header}))
        assert raised.value.code is ErrorCode.RANGE_INVALID


@given(st.one_of(st.text(), DIGITS, UNICODE_DIGITS))
def test_a_content_length_is_a_number_or_invalid(header: str) -> None:
    assume("\r" not in header and "\n" not in header)
    try:
        length = content_length(_header_request("PUT", **{"Content-Length": header}))
    except SizeInvalid:
        return
    assert length == int(header)


# -- the _state upload token -----------------------------------------------------------

SECRETS = st.binary(min_size=1, max_size=64)
STATES = st.builds(
    UploadState,
    name=st.text(),
    uuid=st.text(),
    offset=st.integers(min_value=0, max_value=2**63),
    started_at=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
    ).map(lambda t: t.replace(microsecond=0)),
)


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@given(SECRETS, STATES)
def test_a_token_unpacks_to_what_was_packed(secret: bytes, state: UploadState) -> None:
    signer = UploadStateSigner(secret)
    assert signer.unpack(signer.pack(state)) == state


@given(SECRETS, STATES, st.data())
def test_any_tampering_with_a_token_is_refused(
    secret: bytes, state: UploadState, data: st.DataObject
) -> None:
    signer = UploadStateSigner(secret)
    raw = _raw(signer.pack(state))
    tamper = data.draw(st.sampled_from(["flip", "truncate", "extend", "replace"]))
    if tamper == "flip":
        index = data.draw(st.integers(0, len(raw) - 1))
        bit = 1 << data.draw(st.integers(0, 7))
        forged = raw[:index] + bytes([raw[index] ^ bit]) + raw[index + 1 :]
    elif tamper == "truncate":
        forged = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif tamper == "extend":
        forged = raw + data.draw(st.binary(min_size=1, max_size=16))
    else:  # another state under the same MAC
        other = data.draw(STATES)
        forged = raw[:32] + _raw(signer.pack(other))[32:]
        assume(other != state)
    with pytest.raises(BlobUploadInvalid):
        signer.unpack(_token(forged))


@given(SECRETS, SECRETS, STATES)
def test_a_token_of_another_secret_is_refused(
    secret: bytes, other: bytes, state: UploadState
) -> None:
    assume(secret != other)
    with pytest.raises(BlobUploadInvalid):
        UploadStateSigner(secret).unpack(UploadStateSigner(other).pack(state))


@given(SECRETS, st.one_of(st.text(), st.binary().map(_token)))
def test_an_arbitrary_token_is_an_invalid_upload(secret: bytes, token: str) -> None:
    with pytest.raises(BlobUploadInvalid):
        UploadStateSigner(secret).unpack(token)


@given(
    SECRETS,
    st.dictionaries(
        st.sampled_from(["Name", "UUID", "Offset", "StartedAt", "x"]),
        st.none() | st.integers() | st.text() | st.floats(),
    ),
)
def test_a_signed_token_with_bad_fields_is_an_invalid_upload(
    secret: bytes, fields: dict[str, Any]
) -> None:
    """A token our secret signed but whose JSON is wrong (an older or foreign format)."""
    message = json.dumps(fields).encode()
    token = _token(hmac.new(secret, message, hashlib.sha256).digest() + message)
    try:
        state = UploadStateSigner(secret).unpack(token)
    except BlobUploadInvalid:
        return
    assert isinstance(state.offset, int)


# -- manifests -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
MEDIA_TYPES = st.sampled_from(sorted(KNOWN_MEDIA_TYPES)) | st.text(max_size=40)
FIELDS = [
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "subject",
    "artifactType",
    "annotations",
    "name",
    "tag",
    "fsLayers",
    "history",
    "signatures",
]


@st.composite
def descriptors(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "mediaType": MEDIA_TYPES,
        "digest": digests() | st.text(max_size=80),
        "size": st.integers(min_value=-(2**64), max_value=2**64),
        "urls": JSON,
        "annotations": JSON,
        "platform": JSON,
        "artifactType": JSON,
    }
    return {key: draw(value) for key, value in fields.items() if draw(st.booleans())}


@st.composite
def manifest_like(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like manifests, with any field missing, mistyped or odd."""
    shaped = {
        "schemaVersion": st.sampled_from([1, 2, 3, "2", None]) | JSON,
        "mediaType": MEDIA_TYPES | JSON,
        "config": descriptors() | JSON,
        "layers": st.lists(descriptors(), max_size=3) | JSON,
        "manifests": st.lists(descriptors(), max_size=3) | JSON,
        "subject": descriptors() | JSON,
    }
    document = {key: draw(value) for key, value in shaped.items() if draw(st.booleans())}
    document.update(draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=3)))
    return document


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.one_of(
        st.binary(max_size=512),
        JSON.map(lambda v: json.dumps(v).encode()),
        manifest_like().map(lambda v: json.dumps(v).encode()),
    ),
    st.none() | MEDIA_TYPES,
)
def test_a_manifest_parses_or_raises_a_domain_error(body: bytes, content_type: str | None) -> None:
    try:
        manifest = parse_manifest(body, content_type)
    except RegistryFault:
        return
    assert manifest.digest == Digest.of(manifest.payload)
