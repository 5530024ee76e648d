"""Resumable SHA-256 / SHA-512: hash state that can be saved to storage and resumed elsewhere.

A chunked blob upload arrives as several HTTP requests, possibly on different worker
processes or hosts (DESIGN.md, contract 6). After each chunk the registry stores the
running hash state under ``_uploads/<uuid>/hashstates/<alg>/<offset>`` and the next
request resumes it, so finishing an upload never re-reads the data.

:mod:`hashlib` cannot serialise its state, so this module drives OpenSSL's low-level
``SHA256_Init/Update/Final`` and ``SHA512_*`` functions through :mod:`ctypes`, on the
libcrypto that Python's ``_hashlib`` already links. They are deprecated in OpenSSL 3 but
still exported, and they run at full OpenSSL speed (SHA-NI, AVX2); ctypes releases the
GIL during each call, so hashing in worker threads runs in parallel.

The stored state is byte-identical to Go's ``crypto/sha256`` / ``crypto/sha512``
``MarshalBinary()``, which is what CNCF distribution writes, so an upload started by
``docker-registry`` can be finished by dockyard and the other way round::

    sha256 (108 bytes): b"sha\\x03" | h[8] uint32 BE | block buffer  64 bytes | len uint64 BE
    sha512 (204 bytes): b"sha\\x07" | h[8] uint64 BE | block buffer 128 bytes | len uint64 BE

``len`` counts bytes hashed so far; the buffer holds the ``len % block_size`` bytes not
yet compressed, zero-padded. Stored state is data, never trusted:
:meth:`ResumableHash.restore` validates it and raises :class:`InvalidHashState`.

Exceptions::

    ValueError
    └── InvalidHashState            stored state is malformed or of another algorithm
    RuntimeError
    └── ResumableHashUnavailable    no usable libcrypto in this process
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "InvalidHashState",
    "ResumableHash",
    "ResumableHashUnavailable",
]

SUPPORTED_ALGORITHMS: tuple[str, ...] = ("sha256", "sha512")


class InvalidHashState(ValueError):
    """A stored hash state is malformed, truncated, or belongs to another algorithm."""


class ResumableHashUnavailable(RuntimeError):
    """No libcrypto exporting the low-level SHA-256/512 functions could be used."""


# --------------------------------------------------------------------------------------
# OpenSSL context layouts (openssl/sha.h; identical in OpenSSL 1.0-3.x, LibreSSL and
# BoringSSL). ``data`` is the pending block as raw bytes: OpenSSL memcpy()s input into
# it. ``Nl``/``Nh`` are the low/high words of the message length in *bits*; ``num`` is
# the number of pending bytes (always < block size after an update). The layout is
# checked against the loaded library by _self_test() before first use.


class _HashCtx(ctypes.Structure):
    """Common base of the two OpenSSL context structures."""


class _Sha256Ctx(_HashCtx):
    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_ubyte * 64),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
        # Never touched by a conforming library; insurance against a build whose
        # context is larger than the documented one writing past our allocation.
        ("_slack", ctypes.c_ubyte * 64),
    ]


class _Sha512Ctx(_HashCtx):
    _fields_ = [
        ("h", ctypes.c_uint64 * 8),
        ("Nl", ctypes.c_uint64),
        ("Nh", ctypes.c_uint64),
        ("data", ctypes.c_ubyte * 128),  # union { SHA_LONG64 d[16]; unsigned char p[128]; } u
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
        ("_slack", ctypes.c_ubyte * 64),
    ]


@dataclass(frozen=True, slots=True)
class _Spec:
    """Static description of one algorithm: OpenSSL names and Go marshal format."""

    name: str
    symbol: str  # OpenSSL prefix: SHA256 / SHA512
    ctx_type: type[_HashCtx]
    word_bits: int  # width of h[i], Nl and Nh
    block_size: int
    digest_size: int
    magic: bytes  # Go's marshal magic
    layout: struct.Struct  # magic, h[0..7], buffer, len

    @property
    def state_size(self) -> int:
        return self.layout.size

    @property
    def max_length(self) -> int:
        """Largest byte count the OpenSSL bit counter (Nh:Nl) and Go's uint64 can hold."""
        return min((1 << (2 * self.word_bits - 3)) - 1, (1 << 64) - 1)


_SPECS: dict[str, _Spec] = {
    "sha256": _Spec(
        "sha256", "SHA256", _Sha256Ctx, 32, 64, 32, b"sha\x03", struct.Struct(">4s8I64sQ")
    ),
    "sha512": _Spec(
        "sha512", "SHA512", _Sha512Ctx, 64, 128, 64, b"sha\x07", struct.Struct(">4s8Q128sQ")
    ),
}

# Go's magics for every SHA-2 variant, to name the culprit in error messages.
_GO_MAGICS = {
    b"sha\x02": "sha224",
    b"sha\x03": "sha256",
    b"sha\x04": "sha384",
    b"sha\x05": "sha512/224",
    b"sha\x06": "sha512/256",
    b"sha\x07": "sha512",
}


# --------------------------------------------------------------------------------------
# Zero-copy access to any contiguous buffer (bytearray, memoryview, mmap, ...), read-only
# or not. ``(c_char * n).from_buffer()`` would refuse read-only memoryviews, and copying
# is what we must avoid, so take a Py_buffer through the stable C API. Holding the
# buffer also stops a bytearray from being resized while the GIL is released.


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),  # owned reference; released by PyBuffer_Release
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_PyBUF_SIMPLE = 0  # contiguous bytes; non-contiguous views raise BufferError, as in hashlib
# Own prototypes rather than setting argtypes on the shared ctypes.pythonapi attributes.
_get_buffer = ctypes.PYFUNCTYPE(
    ctypes.c_int, ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int
)(("PyObject_GetBuffer", ctypes.pythonapi))
_release_buffer = ctypes.PYFUNCTYPE(None, ctypes.POINTER(_PyBuffer))(
    ("PyBuffer_Release", ctypes.pythonapi)
)


# --------------------------------------------------------------------------------------
# Binding to libcrypto


class _Engine:
    """One algorithm bound to a libcrypto: contexts, update, final, Go (un)marshal."""

    __slots__ = ("_final", "_init", "_update", "spec")

    def __init__(self, spec: _Spec, lib: ctypes.CDLL) -> None:
        """Bind ``<SYMBOL>_Init/Update/Final``; raise AttributeError if one is missing."""
        self.spec = spec
        # CFUNCTYPE (not PYFUNCTYPE): the GIL is released for the duration of each call.
        # Contexts are passed by address (an int), data as bytes or a raw address.
        self._init: Callable[[int], int] = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(
            (f"{spec.symbol}_Init", lib)
        )
        self._update: Callable[[int, bytes | int | None, int], int] = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
        )((f"{spec.symbol}_Update", lib))
        self._final: Callable[[ctypes.Array[ctypes.c_char], int], int] = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
        )((f"{spec.symbol}_Final", lib))

    def fresh(self) -> _HashCtx:
        ctx = self.spec.ctx_type()
        if self._init(ctypes.addressof(ctx)) != 1:
            raise RuntimeError(f"{self.spec.symbol}_Init failed")
        return ctx

    def update(self, ctx: _HashCtx, data: bytes | int, size: int) -> None:
        """Feed ``size`` bytes from ``data`` (bytes, or the address of a held buffer)."""
        if self._update(ctypes.addressof(ctx), data, size) != 1:
            raise RuntimeError(f"{self.spec.symbol}_Update failed")

    def digest(self, ctx: _HashCtx) -> bytes:
        """Finish a *copy* of ``ctx`` (Final wipes its context) and return the digest."""
        scratch = type(ctx).from_buffer_copy(ctx)
        out = ctypes.create_string_buffer(self.spec.digest_size)
        if self._final(out, ctypes.addressof(scratch)) != 1:
            raise RuntimeError(f"{self.spec.symbol}_Final failed")
        return out.raw

    def length(self, ctx: _HashCtx) -> int:
        """Bytes hashed so far, from the bit counter Nh:Nl."""
        bits: int = (ctx.Nh << self.spec.word_bits) | ctx.Nl
        return bits >> 3

    def marshal(self, ctx: _HashCtx) -> bytes:
        """Encode ``ctx`` the way Go's ``digest.MarshalBinary()`` does."""
        spec = self.spec
        length = self.length(ctx)
        pending: int = ctx.num
        if pending != length % spec.block_size:  # would mean a layout we do not understand
            raise RuntimeError(f"{spec.symbol}_CTX is inconsistent: num={pending}, length={length}")
        # struct's "Ns" zero-pads the pending bytes to the full block, like Go.
        return spec.layout.pack(spec.magic, *ctx.h, bytes(ctx.data)[:pending], length)

    def unmarshal(self, state: bytes) -> _HashCtx:
        """Decode and validate a Go ``MarshalBinary()`` state into a fresh context."""
        spec = self.spec
        if not isinstance(state, bytes | bytearray | memoryview):
            raise InvalidHashState(f"{spec.name} hash state must be bytes, not {type(state)}")
        state = bytes(state)
        if state[:4] != spec.magic:
            other = _GO_MAGICS.get(state[:4])
            found = f"a {other} state" if other else f"magic {state[:4]!r}"
            raise InvalidHashState(
                f"not a {spec.name} hash state: expected magic {spec.magic!r}, found {found}"
            )
        if len(state) != spec.state_size:
            raise InvalidHashState(
                f"{spec.name} hash state must be {spec.state_size} bytes, got {len(state)}"
            )
        _, *rest = spec.layout.unpack(state)
        h: list[int] = rest[:8]
        buffer: bytes = rest[8]
        length: int = rest[9]
        if length > spec.max_length:
            raise InvalidHashState(f"{spec.name} hash state length {length} is out of range")
        pending = length % spec.block_size
        if any(buffer[pending:]):
            raise InvalidHashState(
                f"{spec.name} hash state buffer is inconsistent with its length {length}: "
                f"only the first {pending} bytes may be set"
            )
        ctx = self.fresh()  # sets md_len and anything else Init owns
        bits = length << 3
        ctx.h[:] = h
        ctx.Nl = bits & ((1 << spec.word_bits) - 1)
        ctx.Nh = bits >> spec.word_bits
        ctypes.memmove(ctx.data, buffer, spec.block_size)
        ctx.num = pending
        return ctx


@dataclass(frozen=True, slots=True)
class _Backend:
    source: str  # where the library came from, for error messages and diagnostics
    engines: dict[str, _Engine]


class _LayoutMismatch(Exception):
    """The loaded library's contexts do not look like the ones declared above."""


def _check(condition: bool, problem: str) -> None:
    if not condition:  # not ``assert``: this must also run under ``python -O``
        raise _LayoutMismatch(problem)


def _self_test(engines: dict[str, _Engine]) -> None:
    """Check our idea of the context layout against the library; raise _LayoutMismatch."""
    for engine in engines.values():
        spec = engine.spec
        data = bytes(range(251)) * 3
        ctx = engine.fresh()
        _check(ctx.num == 0 and ctx.Nl == 0 and ctx.Nh == 0, "Init did not zero counters")
        _check(ctx.md_len == spec.digest_size, f"md_len={ctx.md_len}: unexpected layout")
        iv = list(ctx.h)
        engine.update(ctx, data[:3], 3)
        _check(ctx.num == 3 and ctx.Nl == 24, "num/Nl are not where expected")
        _check(bytes(ctx.data)[:3] == data[:3], "pending data is not where expected")
        _check(list(ctx.h) == iv, "h changed before a full block")
        cut = spec.block_size + 5
        engine.update(ctx, data[3:cut], cut - 3)
        _check(ctx.num == 5 and list(ctx.h) != iv, "block not compressed as expected")
        # The round trip through Go's format must carry h, the counters and the buffer.
        try:
            resumed = engine.unmarshal(engine.marshal(ctx))
        except (RuntimeError, InvalidHashState) as exc:
            raise _LayoutMismatch(str(exc)) from exc
        engine.update(resumed, data[cut:], len(data) - cut)
        expected = hashlib.new(spec.name, data).digest()
        _check(engine.digest(resumed) == expected, "resumed digest differs from hashlib")
        _check(engine.length(resumed) == len(data), "length counter mismatch")


def _candidate_libraries() -> Iterator[tuple[str, Callable[[], ctypes.CDLL]]]:
    """Yield (description, loader) for each way of reaching libcrypto, best first.

    1. The dependencies of ``_hashlib``: dlsym() on a dlopen() handle searches the object
       *and its dependencies*, so opening ``_hashlib``'s own file (already loaded; no
       second copy) resolves the symbols in exactly the libcrypto hashlib uses. No
       ldd, subprocess or path guessing; works for ELF and Mach-O.
    2. A libcrypto already mapped into this process (Linux /proc/self/maps), for builds
       where ``_hashlib`` is compiled into the interpreter and has no file of its own.
    3. ``ctypes.util.find_library("crypto")``: may spawn ldconfig/gcc, hence not first.
    4. Well-known sonames, for minimal images without ldconfig.
    """
    try:
        import _hashlib  # loads libcrypto into the process

        hashlib_file: str | None = getattr(_hashlib, "__file__", None)
    except ImportError:
        hashlib_file = None
    if hashlib_file:
        yield f"dependencies of {hashlib_file}", functools.partial(ctypes.CDLL, hashlib_file)
    for path in _mapped_libcrypto():
        yield path, functools.partial(ctypes.CDLL, path)
    found = ctypes.util.find_library("crypto")
    if found:
        yield found, functools.partial(ctypes.CDLL, found)
    for soname in ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.3.dylib", "libcrypto.so"):
        yield soname, functools.partial(ctypes.CDLL, soname)


def _mapped_libcrypto() -> list[str]:
    """Paths of libcrypto files mapped into this process (Linux only; else empty)."""
    paths: list[str] = []
    try:
        with open(f"/proc/{os.getpid()}/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.rstrip("\n").split(maxsplit=5)
                if len(fields) < 6 or fields[5].endswith(" (deleted)"):
                    continue
                path = fields[5]
                if os.path.basename(path).startswith("libcrypto") and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    return paths


@functools.cache
def _load_backend() -> _Backend | str:
    """Find a usable libcrypto once per process; return it, or why none was usable."""
    problems: list[str] = []
    for source, load in _candidate_libraries():
        try:
            lib = load()
            engines = {name: _Engine(spec, lib) for name, spec in _SPECS.items()}
        except (OSError, AttributeError) as exc:
            problems.append(f"{source}: {exc}")
            continue
        try:
            _self_test(engines)
        except (_LayoutMismatch, RuntimeError) as exc:
            problems.append(f"{source}: self-test failed: {exc}")
            continue
        return _Backend(source, engines)
    return "; ".join(problems) or "no candidate library"


def _engine(algorithm: str) -> _Engine:
    if algorithm not in _SPECS:
        raise ValueError(
            f"unsupported hash algorithm {algorithm!r}; expected one of {SUPPORTED_ALGORITHMS}"
        )
    backend = _load_backend()
    if isinstance(backend, str):
        raise ResumableHashUnavailable(
            "resumable SHA-256/512 needs OpenSSL's libcrypto (SHA256_Init/Update/Final, "
            f"SHA512_*) via ctypes, but none was usable in {sys.executable}: {backend}"
        )
    return backend.engines[algorithm]


# --------------------------------------------------------------------------------------
# Public API


class ResumableHash:
    """A running SHA-256 or SHA-512 whose state can be saved and resumed in another process.

    >>> h = ResumableHash.new("sha256")
    >>> h.update(b"ab")
    >>> saved = h.state()                                  # store this
    >>> h2 = ResumableHash.restore("sha256", saved)        # later, anywhere
    >>> h2.update(b"c")
    >>> h2.hexdigest()[:16]
    'ba7816bf8f01cfea'

    Methods are safe to call from several threads; updates on one object are serialised.
    """

    __slots__ = ("_ctx", "_engine", "_lock", "algorithm")

    algorithm: str

    def __init__(self, engine: _Engine, ctx: _HashCtx) -> None:
        """Internal; use :meth:`new` or :meth:`restore`."""
        self.algorithm = engine.spec.name
        self._engine = engine
        self._ctx = ctx
        self._lock = threading.Lock()

    @classmethod
    def new(cls, algorithm: str) -> ResumableHash:
        """Start hashing with ``algorithm`` (one of :data:`SUPPORTED_ALGORITHMS`).

        Raises ValueError for another algorithm and :class:`ResumableHashUnavailable`
        if no usable libcrypto is found.
        """
        engine = _engine(algorithm)
        return cls(engine, engine.fresh())

    @classmethod
    def restore(cls, algorithm: str, state: bytes) -> ResumableHash:
        """Resume from ``state`` as written by :meth:`state` or Go's ``MarshalBinary()``.

        Raises :class:`InvalidHashState` if ``state`` is not a valid state of ``algorithm``.
        """
        engine = _engine(algorithm)
        return cls(engine, engine.unmarshal(state))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash ``data``. Any C-contiguous buffer is hashed in place, without a copy."""
        if isinstance(data, bytes):  # fast path: ctypes passes the bytes' own storage
            with self._lock:
                self._engine.update(self._ctx, data, len(data))
            return
        view = _PyBuffer()
        _get_buffer(data, ctypes.byref(view), _PyBUF_SIMPLE)  # raises TypeError/BufferError
        try:
            if view.len:
                with self._lock:
                    self._engine.update(self._ctx, view.buf, view.len)
        finally:
            _release_buffer(ctypes.byref(view))

    def state(self) -> bytes:
        """The current state in Go's ``MarshalBinary()`` format (108 or 204 bytes)."""
        with self._lock:
            return self._engine.marshal(self._ctx)

    @property
    def length(self) -> int:
        """Number of bytes hashed so far (including those in a restored state)."""
        with self._lock:
            return self._engine.length(self._ctx)

    def digest(self) -> bytes:
        """The digest of the data so far; the running state is left untouched."""
        with self._lock:
            return self._engine.digest(self._ctx)

    def hexdigest(self) -> str:
        """The digest of the data so far, as lowercase hex; the running state is untouched."""
        return self.digest().hex()

    def copy(self) -> ResumableHash:
        """An independent hash with the same state."""
        with self._lock:
            ctx = type(self._ctx).from_buffer_copy(self._ctx)
        return type(self)(self._engine, ctx)

    def __repr__(self) -> str:
        return f"<ResumableHash {self.algorithm} length={self.length}>"
