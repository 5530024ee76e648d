"""The benchmark's big-body receiver: page-aligned buffers, and every byte still compared."""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_client
from bench_client import PAGE, READ_CHUNK, BigBlob, fetch_hashed

SIZE = 3 * READ_CHUNK + 12345  # whole buffers and a tail


def _serve_once(listener: socket.socket, path: Path, size: int) -> None:
    """Answer one GET with the file's bytes by ``sendfile``, as dockyard sends a blob."""
    conn, _ = listener.accept()
    with conn, open(path, "rb") as f:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        offset = 0
        while offset < size:
            offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)


@pytest.fixture
def blob() -> BigBlob:
    return BigBlob(os.urandom(bench_client.BLOCK), SIZE, b"receive test")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def _content(blob: BigBlob) -> bytes:
    """The blob's bytes, whole."""
    return b"".join(bytes(p) for p in blob.pieces(0, blob.size))


def _fetch(
    tmp_path: Path, content: bytes, blob: BigBlob, pool: ThreadPoolExecutor
) -> tuple[int, int, str]:
    path = tmp_path / "blob"
    path.write_bytes(content)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=_serve_once, args=(listener, path, len(content)))
        server.start()
        try:
            return fetch_hashed(listener.getsockname()[1], "/blob", pool, True, None, blob)
        finally:
            server.join(timeout=30)


def test_receive_buffers_start_on_a_page_boundary() -> None:
    def addresses() -> list[int]:
        return [ctypes.addressof(ctypes.c_char.from_buffer(raw)) + start
                for raw, start in bench_client._receive_buffers()]

    found: list[int] = []
    thread = threading.Thread(target=lambda: found.extend(addresses()))
    thread.start()
    thread.join()
    assert len(found) == 2
    assert all(address % PAGE == 0 for address in found)
    for raw, start in bench_client._receive_buffers():
        assert len(raw) - start >= READ_CHUNK


def test_a_body_sent_by_sendfile_matches_its_blob(
    tmp_path: Path, blob: BigBlob, pool: ThreadPoolExecutor
) -> None:
    assert _fetch(tmp_path, _content(blob), blob, pool) == (200, SIZE, blob.digest)


@pytest.mark.parametrize("where", [0, READ_CHUNK - 1, READ_CHUNK, 2 * READ_CHUNK + 7, SIZE - 1])
def test_one_wrong_byte_anywhere_fails_the_compare(
    tmp_path: Path, blob: BigBlob, pool: ThreadPoolExecutor, where: int
) -> None:
    content = bytearray(_content(blob))
    content[where] ^= 0xFF
    assert _fetch(tmp_path, bytes(content), blob, pool) == (200, SIZE, "")
