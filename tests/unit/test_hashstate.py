"""Resumable SHA-256/512: equality with hashlib, Go MarshalBinary format, validation."""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import dockyard.hashstate
from dockyard.hashstate import (
    SUPPORTED_ALGORITHMS,
    InvalidHashState,
    ResumableHash,
)

ALGORITHMS = list(SUPPORTED_ALGORITHMS)
BLOCK = {"sha256": 64, "sha512": 128}
STATE_SIZE = {"sha256": 108, "sha512": 204}
SPLITS = [0, 1, 2, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 191, 255, 256, 257, 1000]


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# --------------------------------------------------------------------------------------
# Independent reference: pure-Python SHA-2 compression and Go's MarshalBinary(). The
# round constants are derived (fractional parts of square/cube roots of primes), so no
# table is copied from the code under test.


def _primes(n: int) -> list[int]:
    found: list[int] = []
    candidate = 2
    while len(found) < n:
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
        candidate += 1
    return found


def _icbrt(n: int) -> int:
    x = 1 << -(-n.bit_length() // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            return x
        x = y


class _RefSha2:
    def __init__(self, word_bits: int) -> None:
        self.bits = word_bits
        self.mask = (1 << word_bits) - 1
        self.rounds = 64 if word_bits == 32 else 80
        self.block = 2 * word_bits
        primes = _primes(self.rounds)
        self.iv = [math.isqrt(p << (2 * word_bits)) & self.mask for p in primes[:8]]
        self.k = [_icbrt(p << (3 * word_bits)) & self.mask for p in primes]
        if word_bits == 32:
            self.sig = ((2, 13, 22), (6, 11, 25), (7, 18, 3), (17, 19, 10))
        else:
            self.sig = ((28, 34, 39), (14, 18, 41), (1, 8, 7), (19, 61, 6))
        self.fmt = ">16I" if word_bits == 32 else ">16Q"

    def _rotr(self, x: int, n: int) -> int:
        return ((x >> n) | (x << (self.bits - n))) & self.mask

    def compress(self, h: list[int], block: bytes) -> list[int]:
        m, r = self.mask, self._rotr
        (a0, a1, a2), (e0, e1, e2), (s0a, s0b, s0c), (s1a, s1b, s1c) = self.sig
        w = list(struct.unpack(self.fmt, block))
        for i in range(16, self.rounds):
            s0 = r(w[i - 15], s0a) ^ r(w[i - 15], s0b) ^ (w[i - 15] >> s0c)
            s1 = r(w[i - 2], s1a) ^ r(w[i - 2], s1b) ^ (w[i - 2] >> s1c)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & m)
        a, b, c, d, e, f, g, hh = h
        for i in range(self.rounds):
            t1 = hh + (r(e, e0) ^ r(e, e1) ^ r(e, e2)) + ((e & f) ^ (~e & g)) + self.k[i] + w[i]
            t2 = (r(a, a0) ^ r(a, a1) ^ r(a, a2)) + ((a & b) ^ (a & c) ^ (b & c))
            a, b, c, d, e, f, g, hh = (t1 + t2) & m, a, b, c, (d + t1) & m, e, f, g
        return [(x + y) & m for x, y in zip(h, (a, b, c, d, e, f, g, hh), strict=True)]

    def go_state(self, data: bytes) -> bytes:
        """What Go's MarshalBinary() returns after writing ``data``."""
        h = self.iv
        full = len(data) - len(data) % self.block
        for i in range(0, full, self.block):
            h = self.compress(h, data[i : i + self.block])
        magic = b"sha\x03" if self.bits == 32 else b"sha\x07"
        word = "I" if self.bits == 32 else "Q"
        return struct.pack(f">4s8{word}{self.block}sQ", magic, *h, data[full:], len(data))

    def digest(self, data: bytes) -> bytes:
        length_field = self.block // 8
        pad = b"\x80" + b"\0" * ((-len(data) - 1 - length_field) % self.block)
        padded = data + pad + (len(data) * 8).to_bytes(length_field, "big")
        h = self.iv
        for i in range(0, len(padded), self.block):
            h = self.compress(h, padded[i : i + self.block])
        return b"".join(x.to_bytes(self.bits // 8, "big") for x in h)


REF = {"sha256": _RefSha2(32), "sha512": _RefSha2(64)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reference_implementation_is_sha2(algorithm: str) -> None:
    for size in (0, 3, 111, 112, 128, 200):
        data = _data(size, seed=size)
        assert REF[algorithm].digest(data) == hashlib.new(algorithm, data).digest()


# --------------------------------------------------------------------------------------
# Equality with hashlib


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("split", SPLITS)
def test_split_update_and_resume_equal_hashlib(algorithm: str, split: int) -> None:
    data = _data(1000 + 17, seed=split)
    expected = hashlib.new(algorithm, data).hexdigest()

    h = ResumableHash.new(algorithm)
    h.update(data[:split])
    state = h.state()
    assert len(state) == STATE_SIZE[algorithm]
    assert h.length == split

    resumed = ResumableHash.restore(algorithm, state)
    assert resumed.length == split
    resumed.update(data[split:])
    assert resumed.hexdigest() == expected

    h.update(data[split:])
    assert h.hexdigest() == expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_state_matches_reference_marshal_for_every_length(algorithm: str) -> None:
    data = _data(3 * BLOCK[algorithm] + 1, seed=7)
    h = ResumableHash.new(algorithm)
    for size in range(len(data) + 1):
        assert h.state() == REF[algorithm].go_state(data[:size]), size
        if size < len(data):
            h.update(data[size : size + 1])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_resume_at_every_offset(algorithm: str) -> None:
    data = _data(2 * BLOCK[algorithm] + 3, seed=3)
    expected = hashlib.new(algorithm, data).hexdigest()
    for split in range(len(data) + 1):
        h = ResumableHash.new(algorithm)
        h.update(data[:split])
        resumed = ResumableHash.restore(algorithm, h.state())
        resumed.update(data[split:])
        assert resumed.hexdigest() == expected, split


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_large_data_with_repeated_save_and_resume(algorithm: str) -> None:
    data = _data(3 * (1 << 20) + 129, seed=11)
    rng = random.Random(5)
    h = ResumableHash.new(algorithm)
    offset = 0
    while offset < len(data):
        step = rng.choice([1, 63, 64, 65, 127, 128, 129, 4096, 65536 + 1, 1 << 20])
        h.update(memoryview(data)[offset : offset + step])
        offset = min(offset + step, len(data))
        h = ResumableHash.restore(algorithm, h.state())
        assert h.length == offset
    assert h.hexdigest() == hashlib.new(algorithm, data).hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_accepts_every_contiguous_buffer(algorithm: str) -> None:
    data = _data(4096 + 5, seed=1)
    pieces: list[bytes | bytearray | memoryview] = [
        data[:10],
        bytearray(data[10:100]),
        memoryview(data)[100:700],  # read-only view
        memoryview(bytearray(data[700:1500])),  # writable view
        memoryview(data[1500:1504]).cast("I"),  # non-byte format, hashed as raw bytes
        memoryview(b""),
        bytearray(),
        memoryview(data)[1504:],
    ]
    h = ResumableHash.new(algorithm)
    for piece in pieces:
        h.update(piece)
    assert h.length == len(data)
    assert h.hexdigest() == hashlib.new(algorithm, data).hexdigest()


def test_rejects_non_contiguous_and_non_buffer_input() -> None:
    h = ResumableHash.new("sha256")
    with pytest.raises(BufferError):
        h.update(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError):
        h.update("text")  # type: ignore[arg-type]
    assert h.length == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hexdigest_and_copy_leave_running_state_alone(algorithm: str) -> None:
    h = ResumableHash.new(algorithm)
    h.update(b"abc")
    before = h.state()
    assert h.hexdigest() == hashlib.new(algorithm, b"abc").hexdigest()
    assert h.digest() == hashlib.new(algorithm, b"abc").digest()
    assert h.state() == before

    clone = h.copy()
    clone.update(b"def")
    h.update(b"xyz")
    assert clone.hexdigest() == hashlib.new(algorithm, b"abcdef").hexdigest()
    assert h.hexdigest() == hashlib.new(algorithm, b"abcxyz").hexdigest()
    assert clone.algorithm == h.algorithm == algorithm


def test_threads_hash_independently() -> None:
    chunks = [_data(256 * 1024, seed=i) for i in range(4)]
    results: dict[int, str] = {}

    def work(i: int) -> None:
        h = ResumableHash.new("sha256")
        for _ in range(8):
            h.update(memoryview(chunks[i]))
        results[i] = h.hexdigest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: hashlib.sha256(chunks[i] * 8).hexdigest() for i in range(4)}


# --------------------------------------------------------------------------------------
# Another process


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_state_resumes_in_another_process(algorithm: str) -> None:
    data = _data(5 * BLOCK[algorithm] + 77, seed=9)
    split = 2 * BLOCK[algorithm] + 30
    h = ResumableHash.new(algorithm)
    h.update(data[:split])

    src = Path(dockyard.hashstate.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    script = (
        "import sys; from dockyard.hashstate import ResumableHash; "
        "h = ResumableHash.restore(sys.argv[1], bytes.fromhex(sys.argv[2])); "
        "h.update(sys.stdin.buffer.read()); print(h.length, h.hexdigest())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, algorithm, h.state().hex()],
        input=data[split:],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert done.stdout.decode().split() == [
        str(len(data)),
        hashlib.new(algorithm, data).hexdigest(),
    ]


# --------------------------------------------------------------------------------------
# Golden vectors

SHA256_IV = bytes.fromhex("6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19")
SHA512_IV = bytes.fromhex(
    "6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1"
    "510e527fade682d19b05688c2b3e6c1f1f83d9abfb41bd6b5be0cd19137e2179"
)


def test_golden_sha256_empty_and_abc() -> None:
    h = ResumableHash.new("sha256")
    assert h.state() == b"sha\x03" + SHA256_IV + bytes(64) + (0).to_bytes(8, "big")
    h.update(b"abc")
    assert h.state() == (b"sha\x03" + SHA256_IV + b"abc" + bytes(61) + (3).to_bytes(8, "big"))


def test_golden_sha512_empty_and_abc() -> None:
    h = ResumableHash.new("sha512")
    assert h.state() == b"sha\x07" + SHA512_IV + bytes(128) + (0).to_bytes(8, "big")
    h.update(b"abc")
    assert h.state() == b"sha\x07" + SHA512_IV + b"abc" + bytes(125) + (3).to_bytes(8, "big")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_golden_one_full_block(algorithm: str) -> None:
    block = BLOCK[algorithm]
    data = bytes(range(block))
    h = ResumableHash.new(algorithm)
    h.update(data)
    state = h.state()
    word = 4 if algorithm == "sha256" else 8
    expected_h = REF[algorithm].compress(REF[algorithm].iv, data)
    assert state[4 : 4 + 8 * word] == b"".join(x.to_bytes(word, "big") for x in expected_h)
    assert state[4 + 8 * word :] == bytes(block) + block.to_bytes(8, "big")

    resumed = ResumableHash.restore(algorithm, state)
    assert resumed.hexdigest() == hashlib.new(algorithm, data).hexdigest()
    resumed.update(b"tail")
    assert resumed.hexdigest() == hashlib.new(algorithm, data + b"tail").hexdigest()


# Written by docker-registry 2.8.2 (distribution, Go crypto/sha256 MarshalBinary) to
# _uploads/<uuid>/hashstates/sha256/<offset> during a chunked upload of GO_DATA.
GO_DATA = bytes((i * 7 + 3) % 256 for i in range(300))
GO_STATES = {
    0: "736861036a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd1900000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000",
    100: "73686103efd29b436f63eaf244f598951fbb7c8f2a517b27d2015d2951958d1b5d12bf47c3cad1d8"
    "dfe6edf4fb020910171e252c333a41484f565d646b727980878e959ca3aab1b80000000000000000"
    "00000000000000000000000000000000000000000000000000000064",
    300: "73686103401999a31ffb88eb4f954f58f7394dcc0978c87307d3f97dd2830598aae1204f030a1118"
    "1f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930"
    "0000000000000000000000000000000000000000000000000000012c",
}


@pytest.mark.parametrize("offset", sorted(GO_STATES))
def test_states_written_by_distribution(offset: int) -> None:
    go_state = bytes.fromhex(GO_STATES[offset])
    h = ResumableHash.new("sha256")
    h.update(GO_DATA[:offset])
    assert h.state() == go_state

    resumed = ResumableHash.restore("sha256", go_state)
    resumed.update(GO_DATA[offset:])
    assert resumed.hexdigest() == hashlib.sha256(GO_DATA).hexdigest()


# --------------------------------------------------------------------------------------
# Malformed states


def _valid(algorithm: str, size: int = 70) -> bytearray:
    h = ResumableHash.new(algorithm)
    h.update(_data(size))
    return bytearray(h.state())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rejects_wrong_magic(algorithm: str) -> None:
    state = _valid(algorithm)
    state[:4] = b"xyz\x03"
    with pytest.raises(InvalidHashState, match="magic"):
        ResumableHash.restore(algorithm, bytes(state))
    state[:4] = b"sha\x02"  # Go's sha224
    with pytest.raises(InvalidHashState, match="sha224"):
        ResumableHash.restore(algorithm, bytes(state))


def test_rejects_state_of_the_other_algorithm() -> None:
    with pytest.raises(InvalidHashState, match="sha512"):
        ResumableHash.restore("sha256", bytes(_valid("sha512")))
    with pytest.raises(InvalidHashState, match="sha256"):
        ResumableHash.restore("sha512", bytes(_valid("sha256")))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rejects_wrong_length(algorithm: str) -> None:
    state = bytes(_valid(algorithm))
    for bad in (b"", state[:4], state[:-1], state + b"\0", state * 2):
        with pytest.raises(InvalidHashState):
            ResumableHash.restore(algorithm, bad)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rejects_buffer_inconsistent_with_length(algorithm: str) -> None:
    word = 4 if algorithm == "sha256" else 8
    buffer_at = 4 + 8 * word
    state = _valid(algorithm, size=BLOCK[algorithm] + 5)  # 5 pending bytes
    state[buffer_at + 5] = 1  # a byte beyond the pending ones
    with pytest.raises(InvalidHashState, match="inconsistent"):
        ResumableHash.restore(algorithm, bytes(state))

    state = _valid(algorithm, size=BLOCK[algorithm] + 5)
    state[-8:] = (BLOCK[algorithm] + 2).to_bytes(8, "big")  # length says 2 pending, buffer 5
    with pytest.raises(InvalidHashState, match="inconsistent"):
        ResumableHash.restore(algorithm, bytes(state))


def test_rejects_length_beyond_the_bit_counter() -> None:
    state = bytearray(ResumableHash.new("sha256").state())
    state[-8:] = (1 << 61).to_bytes(8, "big")
    with pytest.raises(InvalidHashState, match="out of range"):
        ResumableHash.restore("sha256", bytes(state))
    # SHA-512's 128-bit counter holds any uint64 byte count.
    state = bytearray(ResumableHash.new("sha512").state())
    state[-8:] = ((1 << 64) - 128).to_bytes(8, "big")
    assert ResumableHash.restore("sha512", bytes(state)).length == (1 << 64) - 128


def test_rejects_non_bytes_state_and_unknown_algorithm() -> None:
    with pytest.raises(InvalidHashState):
        ResumableHash.restore("sha256", "sha\x03" + "0" * 104)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported"):
        ResumableHash.new("md5")
    with pytest.raises(ValueError, match="unsupported"):
        ResumableHash.restore("sha384", bytes(_valid("sha512")))
