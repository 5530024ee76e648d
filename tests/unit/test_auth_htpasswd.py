"""The htpasswd access controller: bcrypt only, reload, provisioning, caching."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import stat
import threading
from pathlib import Path

import bcrypt
import pytest

from dockyard.auth import Access, AuthChallenge, build_access_controller
from dockyard.auth import htpasswd as htpasswd_mod
from dockyard.auth.htpasswd import HtpasswdAccessController, parse_htpasswd

PULL = Access("repository", "foo/bar", "pull")


def _hash(password: str, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return prefix + hashed[4:]


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _controller(path: Path, realm: str = "dockyard") -> HtpasswdAccessController:
    controller = build_access_controller("htpasswd", {"realm": realm, "path": str(path)})
    assert isinstance(controller, HtpasswdAccessController)
    return controller


def _rewrite(path: Path, text: str) -> None:
    """Replace the file's content, with a new mtime even on coarse-mtime filesystems."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _remove(path: Path) -> None:
    path.unlink()


@pytest.fixture
def htfile(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(
        "# comment\n\n"
        f"alice:{_hash('wonderland', '$2y$')}\n"
        f"bob:{_hash('builder', '$2a$')}\n"
        f"carol:{_hash('s3cr:et', '$2b$')}\n"
    )
    return path


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "wonderland"), ("bob", "builder"), ("carol", "s3cr:et")]
)
def test_accepts_bcrypt_variants(htfile: Path, user: str, password: str) -> None:
    grant = asyncio.run(_controller(htfile).authorize(_basic(user, password), [PULL]))
    assert grant.subject == user
    assert grant.allows(PULL)
    assert grant.allows(Access("registry", "catalog", "*"))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("alice", "wrong"),
        _basic("nobody", "wonderland"),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
)
def test_rejects_with_basic_challenge(htfile: Path, headers: dict[str, str]) -> None:
    with pytest.raises(AuthChallenge) as info:
        asyncio.run(_controller(htfile, realm='my "realm"').authorize(headers, [PULL]))
    exc = info.value
    assert (exc.status, exc.code) == (401, "UNAUTHORIZED")
    assert exc.headers == {"WWW-Authenticate": 'Basic realm="my \\"realm\\""'}
    assert exc.detail == [{"Type": "repository", "Class": "", "Name": "foo/bar", "Action": "pull"}]


def test_header_lookup_is_case_insensitive(htfile: Path) -> None:
    headers = {"authorization": _basic("alice", "wonderland")["Authorization"]}
    assert asyncio.run(_controller(htfile).authorize(headers, [])).subject == "alice"


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ("$apr1$abcdefgh$0123456789abcdefghijkl", "MD5"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
        ("abJnggxhB/yWI", "crypt"),
        ("$6$salt$" + "x" * 86, "SHA-512-crypt"),
        ("plaintext-password", "plain text"),
        ("$2y$05$tooshort", "malformed bcrypt"),
    ],
)
def test_other_hash_types_rejected_at_build(tmp_path: Path, entry: str, kind: str) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{_hash('x')}\ndave:{entry}\n")
    with pytest.raises(ValueError) as info:
        _controller(path)
    message = str(info.value)
    assert "'dave'" in message and kind in message and "'path'" in message
    assert entry not in message  # never echo the hash


def test_line_without_colon_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text("justauser\n")
    with pytest.raises(ValueError, match=":1: invalid entry"):
        _controller(path)


def test_parse_htpasswd_last_entry_wins_and_trims() -> None:
    first, second = _hash("a"), _hash("b")
    entries = parse_htpasswd(f"  u:{first}  \n#x:y\nu:{second}\n")
    assert entries == {"u": second.encode()}


def test_missing_file_is_provisioned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "deep" / "dir" / "htpasswd"
    with caplog.at_level(logging.WARNING, logger="dockyard.auth.htpasswd"):
        controller = _controller(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert content.startswith("docker:$2")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    password = warnings[0].args[2]  # type: ignore[index]
    assert isinstance(password, str) and len(password) >= 32
    assert password not in content
    grant = asyncio.run(controller.authorize(_basic("docker", password), [PULL]))
    assert grant.subject == "docker"
    # Building again reuses the file and logs nothing.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dockyard.auth.htpasswd"):
        _controller(path)
    assert not caplog.records
    assert path.read_text() == content
    assert not [p for p in path.parent.iterdir() if p.name != "htpasswd"]


def test_reloads_when_file_changes(htfile: Path) -> None:
    controller = _controller(htfile)

    async def scenario() -> None:
        assert (await controller.authorize(_basic("alice", "wonderland"), [])).subject == "alice"
        with pytest.raises(AuthChallenge):
            await controller.authorize(_basic("erin", "pw"), [])
        # Add erin, drop alice: the cached success of alice must not survive.
        _rewrite(htfile, f"erin:{_hash('pw')}\n")
        assert (await controller.authorize(_basic("erin", "pw"), [])).subject == "erin"
        with pytest.raises(AuthChallenge):
            await controller.authorize(_basic("alice", "wonderland"), [])

    asyncio.run(scenario())


def test_password_change_invalidates_cache(htfile: Path) -> None:
    controller = _controller(htfile)

    async def scenario() -> None:
        await controller.authorize(_basic("alice", "wonderland"), [])
        _rewrite(htfile, f"alice:{_hash('new')}\n")
        with pytest.raises(AuthChallenge):
            await controller.authorize(_basic("alice", "wonderland"), [])
        assert (await controller.authorize(_basic("alice", "new"), [])).subject == "alice"

    asyncio.run(scenario())


def test_broken_file_fails_closed_then_recovers(htfile: Path) -> None:
    controller = _controller(htfile)
    good = htfile.read_text()

    async def scenario() -> None:
        await controller.authorize(_basic("alice", "wonderland"), [])
        _rewrite(htfile, good + "mallory:$apr1$x$y\n")
        with pytest.raises(AuthChallenge):
            await controller.authorize(_basic("alice", "wonderland"), [])
        _remove(htfile)
        with pytest.raises(AuthChallenge):
            await controller.authorize(_basic("alice", "wonderland"), [])
        _rewrite(htfile, good)
        assert (await controller.authorize(_basic("alice", "wonderland"), [])).subject == "alice"

    asyncio.run(scenario())


def test_bcrypt_runs_off_loop_once_for_many_requests(
    htfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = htpasswd_mod._checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(threading.current_thread().name)
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_mod, "_checkpw", counting)
    controller = _controller(htfile)
    headers = _basic("alice", "wonderland")

    async def scenario() -> None:
        grants = await asyncio.gather(*(controller.authorize(headers, [PULL]) for _ in range(50)))
        assert all(g.subject == "alice" for g in grants)
        for _ in range(50):
            await controller.authorize(headers, [PULL])

    asyncio.run(scenario())
    assert len(calls) == 1
    assert calls[0] != threading.main_thread().name


def test_failures_are_not_cached(htfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = htpasswd_mod._checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_mod, "_checkpw", counting)
    controller = _controller(htfile)

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(AuthChallenge):
                await controller.authorize(_basic("alice", "nope"), [])

    asyncio.run(scenario())
    assert len(calls) == 3


def test_cache_never_holds_the_password(htfile: Path) -> None:
    controller = _controller(htfile)
    asyncio.run(controller.authorize(_basic("alice", "wonderland"), []))
    cache = controller.users._cache
    assert len(cache) == 1
    for key, (_, hashed) in cache.items():
        assert b"wonderland" not in key and b"wonderland" not in hashed
        assert re.fullmatch(rb"\$2[aby]\$.*", hashed)


def test_cache_expires(htfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    controller = _controller(htfile)
    controller.users._cache_ttl = 0.0
    calls: list[int] = []
    real = htpasswd_mod._checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_mod, "_checkpw", counting)

    async def scenario() -> None:
        for _ in range(2):
            await controller.authorize(_basic("alice", "wonderland"), [])

    asyncio.run(scenario())
    assert len(calls) == 2


def test_concurrent_provisioning_creates_one_user(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "auth" / "htpasswd"
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda _: htpasswd_mod.ensure_htpasswd(path), range(4)))
    assert created.count(True) == 1
    assert len(path.read_text().splitlines()) == 1
