"""Basic authentication against an htpasswd file, as distribution's ``auth/htpasswd``.

Only bcrypt entries (``$2y$``/``$2a$``/``$2b$``, what ``htpasswd -B`` writes) are
accepted, like distribution; a file with another hash type (``$apr1$`` MD5, ``{SHA}``,
crypt, plain text) is refused when the controller is built, naming the user and the type.

The file is re-read when it changes (mtime, size or inode). Password checks run in a
worker thread, and successful checks are remembered for a minute, keyed by an HMAC of
user and password under a per-process random key (never the password itself), and tied
to the user's current hash, so a push of a hundred requests costs one bcrypt round and a
password change takes effect at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bcrypt

from dockyard.auth._util import check_keys, get_header, option_str, parse_basic, quote_param
from dockyard.auth.access import Access, AuthChallenge, Grant

__all__ = [
    "HtpasswdAccessController",
    "HtpasswdFile",
    "ensure_htpasswd",
    "parse_htpasswd",
]

log = logging.getLogger(__name__)

_SECTION = "auth.htpasswd"
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_MAX_PASSWORD = 72  # bcrypt uses the first 72 bytes, as htpasswd -B does
_DEFAULT_USER = "docker"


def _hash_type(value: str) -> str:
    """A human name for the hash scheme of an htpasswd entry (never the hash itself)."""
    prefixes = (
        ("$apr1$", "MD5 ($apr1$)"),
        ("{SHA}", "SHA-1 ({SHA})"),
        ("$1$", "MD5-crypt ($1$)"),
        ("$5$", "SHA-256-crypt ($5$)"),
        ("$6$", "SHA-512-crypt ($6$)"),
        ("$2x$", "bcrypt $2x$ (buggy variant)"),
        ("$argon2", "Argon2"),
        ("$y$", "yescrypt"),
    )
    for prefix, name in prefixes:
        if value.startswith(prefix):
            return name
    if value.startswith("$2"):
        return "malformed bcrypt"
    if re.fullmatch(r"[./0-9A-Za-z]{13}", value):
        return "crypt (DES)"
    return "plain text or unknown"


def parse_htpasswd(text: str, source: str = "htpasswd") -> dict[str, bytes]:
    """``{user: bcrypt hash}`` from htpasswd text.

    As distribution: blank lines and lines starting with ``#`` are skipped, an entry is
    split at its first colon, a later entry for the same user wins. Raises
    ``ValueError`` for a line without a colon or a hash that is not bcrypt.
    """
    entries: dict[str, bytes] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise ValueError(f"{source}:{lineno}: invalid entry (expected user:hash)")
        if _BCRYPT.fullmatch(hashed) is None:
            raise ValueError(
                f"{source}:{lineno}: user {user!r} has a {_hash_type(hashed)} password hash; "
                "only bcrypt is supported (create entries with htpasswd -B)"
            )
        entries[user] = hashed.encode("ascii")
    return entries


def ensure_htpasswd(path: Path) -> bool:
    """Create ``path`` with user ``docker`` and a random password if it does not exist.

    This is what distribution does for a missing htpasswd file. The generated password
    is logged once, at WARNING: it is the one secret dockyard ever logs, because the log
    is the only way to learn it. Only its bcrypt hash is stored. Parent directories are
    created (0700) and the file is written 0600 and published atomically with a hard
    link, so concurrent workers never see a partial file and only one of them creates
    (and logs) it. Returns True if this call created the file.
    """
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")
    hashed = bcrypt.hashpw(password.encode("ascii"), bcrypt.gensalt(10)).decode("ascii")
    fd, tmp = tempfile.mkstemp(prefix=".htpasswd-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{_DEFAULT_USER}:{hashed}\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    log.warning(
        "htpasswd file %s is missing; provisioned it with user %r and password %s",
        path,
        _DEFAULT_USER,
        password,
    )
    return True


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False


class HtpasswdFile:
    """The users of an htpasswd file, re-read when the file changes.

    Construction reads the file and raises ``ValueError`` (naming the user and hash
    type) if it is unreadable or has a non-bcrypt entry. A file that later becomes
    missing or invalid is logged once and denies everyone until it is fixed: failing
    closed, never falling back to stale entries.
    """

    def __init__(
        self,
        path: Path,
        *,
        cache_ttl: float = 60.0,
        cache_size: int = 1024,
    ) -> None:
        self.path = path
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._stamp: tuple[int, int, int] | None = None
        try:
            st = path.stat()
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read htpasswd file {path}: {exc}") from None
        self._entries = parse_htpasswd(text, str(path))
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._broken = False
        # Dummy salt for unknown users, so they cost as much as known ones.
        self._dummy_salt = bcrypt.gensalt(self._typical_cost())
        self._cache_key = os.urandom(32)
        self._cache: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._inflight: dict[tuple[bytes, bytes], asyncio.Future[bool]] = {}

    def _typical_cost(self) -> int:
        costs = [int(h[4:6]) for h in self._entries.values()]
        return max(4, min(max(costs, default=10), 14))

    def _refresh(self) -> dict[str, bytes]:
        """The current entries, re-reading the file if it changed since the last call."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if not self._broken:
                log.error("htpasswd file %s unavailable, denying all: %s", self.path, exc)
            self._broken, self._stamp, self._entries = True, None, {}
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return self._entries
        self._stamp = stamp
        try:
            with open(self.path, encoding="utf-8") as fh:
                entries = parse_htpasswd(fh.read(), str(self.path))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.error("htpasswd file %s is invalid, denying all: %s", self.path, exc)
            self._broken, self._entries = True, {}
            return self._entries
        if self._broken:
            log.info("htpasswd file %s is valid again", self.path)
        self._broken, self._entries = False, entries
        log.debug("loaded %d users from %s", len(entries), self.path)
        return entries

    def users(self) -> Mapping[str, bytes]:
        """``{user: bcrypt hash}`` as of now."""
        return dict(self._refresh())

    def hash_of(self, user: str) -> bytes | None:
        """The current bcrypt hash of ``user``, None if there is no such user."""
        return self._refresh().get(user)

    def _key(self, user: str, password: bytes) -> bytes:
        encoded = user.encode("utf-8")
        message = len(encoded).to_bytes(4, "big") + encoded + password
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    async def authenticate(self, user: str, password: bytes) -> bool:
        """True if ``password`` is ``user``'s. bcrypt runs off the event loop."""
        stored = self._refresh().get(user)
        candidate = password[:_MAX_PASSWORD]
        if stored is None:
            await asyncio.to_thread(bcrypt.hashpw, candidate, self._dummy_salt)
            return False
        key = self._key(user, password)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None:
            expires, hashed = hit
            if expires > now and hmac.compare_digest(hashed, stored):
                return True
            del self._cache[key]
        loop = asyncio.get_running_loop()
        flight = (key, stored)
        pending = self._inflight.get(flight)
        if pending is None or pending.get_loop() is not loop:
            pending = loop.create_task(asyncio.to_thread(_checkpw, candidate, stored))
            self._inflight[flight] = pending

            def _done(fut: asyncio.Future[bool], flight: tuple[bytes, bytes] = flight) -> None:
                if self._inflight.get(flight) is fut:
                    del self._inflight[flight]

            pending.add_done_callback(_done)
        ok = await asyncio.shield(pending)
        if ok:
            self._cache[key] = (time.monotonic() + self._cache_ttl, stored)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ok


class HtpasswdAccessController:
    """Basic authentication; a valid user is granted everything (distribution's htpasswd)."""

    def __init__(self, realm: str, users: HtpasswdFile) -> None:
        self.realm = realm
        self.users = users

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HtpasswdAccessController:
        """From ``auth.htpasswd``: ``realm`` and ``path`` (created if missing)."""
        check_keys(options, _SECTION, ("realm", "path"))
        realm = option_str(options, _SECTION, "realm")
        path = Path(option_str(options, _SECTION, "path"))
        try:
            ensure_htpasswd(path)
        except OSError as exc:
            raise ValueError(f"{_SECTION}: option 'path': cannot create {path}: {exc}") from None
        try:
            users = HtpasswdFile(path)
        except ValueError as exc:
            raise ValueError(f"{_SECTION}: option 'path': {exc}") from None
        return cls(realm, users)

    def _challenge(self, accesses: Sequence[Access]) -> AuthChallenge:
        return AuthChallenge.unauthorized(f"Basic realm={quote_param(self.realm)}", accesses)

    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Grant:
        credentials = parse_basic(get_header(headers, "Authorization"))
        if credentials is None:
            raise self._challenge(accesses)
        user, password = credentials
        if not await self.users.authenticate(user, password):
            log.info("htpasswd: authentication failed for user %r", user)
            raise self._challenge(accesses)
        return Grant(subject=user, unrestricted=True)
