"""Listings: ``/v2/_catalog``, ``/v2/<name>/tags/list`` and the referrers API."""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from urllib.parse import urlencode

from aiohttp import web

from dockyard.api.context import context
from dockyard.api.errors import ErrorCode, RegistryError
from dockyard.api.params import parse_count, parse_digest, repository
from dockyard.api.urls import v2_url
from dockyard.manifest import OCI_INDEX
from dockyard.metadata import Page
from dockyard.names import is_valid_tag

__all__ = ["catalog", "page_size", "referrers", "tags_json", "tags_list"]


def page_size(request: web.Request, maximum: int | None) -> int | None:
    """``n``: at most ``maximum`` (None: no limit); PAGINATION_NUMBER_INVALID if bad."""
    raw = request.query.get("n")
    if raw is None or raw == "":
        return maximum
    n = parse_count(raw)
    if n is None:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, {"n": raw[:40]})
    return min(n, maximum) if maximum is not None else n


def _next_link(request: web.Request, path: str, n: int | None, last: str) -> str:
    query = {"last": last, **({"n": str(n)} if n is not None else {})}
    url = v2_url(request, path)
    relative = url[url.index("/v2/") :] if context(request).urls.relative else url
    return f'<{relative}?{urlencode(query)}>; rel="next"'


async def catalog(request: web.Request) -> web.Response:
    ctx = context(request)
    n = page_size(request, ctx.catalog_max_entries)
    assert n is not None
    last = request.query.get("last", "")
    page = await ctx.namespace.catalog(n, last)
    headers = {}
    if page.more and page.entries:
        headers["Link"] = _next_link(request, "_catalog", n, page.entries[-1])
    return web.json_response({"repositories": page.entries}, headers=headers)


_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
"""The characters JSON strings hold as they are."""


def tags_json(name: str, tags: list[str]) -> bytes:
    """``{"name": ..., "tags": [...]}`` as ``json.dumps`` writes it. The tags are joined
    as they are when none needs escaping (tags are ``[A-Za-z0-9_.-]``, but an index
    rebuilt from storage reads whatever directory names it finds): a fifth of the cost
    of ``json.dumps`` on a long list."""
    return _encoded(name, tags)[0]


def _encoded(name: str, tags: list[str]) -> tuple[bytes, bool]:
    """:func:`tags_json`, and whether every tag went in as it is (nothing escaped)."""
    body = _plain_tags_json(name, tags)
    if body is None:
        return json.dumps({"name": name, "tags": tags}).encode(), False
    return body, True


def _plain_tags_json(name: str, tags: list[str]) -> bytes | None:
    """:func:`tags_json` when every tag is written as it is (none to escape), else None."""
    joined = '", "'.join(tags)
    if tags and joined.isascii():
        raw = joined.encode()
        # Once every plain character is taken out, only the separators' quotes are left.
        if raw.translate(None, _PLAIN) == b'"' * (2 * len(tags) - 2):
            return b'{"name": %s, "tags": ["%s"]}' % (json.dumps(name).encode(), raw)
    return None


def _with_inserted(body: bytes, name: str, tags: list[str], added: tuple[str, ...]) -> bytes | None:
    """``body``, a plain :func:`tags_json` of ``tags`` without ``added``, with them
    inserted where they sort; None when that cannot be done safely (a name that is not
    a valid tag, or not where ``tags`` says).

    Each goes in before the name that follows it, found as the quoted element it is
    (a valid tag holds no quote, comma or space, so ``"name"`` matches one whole
    element only), the last ones first, so that the name that follows is always one
    already in the body.
    """
    start = len(b'{"name": %s, "tags": [' % json.dumps(name).encode())
    for tag in reversed(added):
        at = bisect.bisect_left(tags, tag)
        if at == len(tags) or tags[at] != tag or not is_valid_tag(tag):
            return None
        if at + 1 < len(tags):
            following = tags[at + 1]
            if not is_valid_tag(following):
                return None
            where = body.find(b'"%s"' % following.encode(), start)
            if where < 0:
                return None
            view = memoryview(body)  # one copy of the body, by the join
            body = b"".join((view[:where], b'"%s", ' % tag.encode(), view[where:]))
        else:
            body = b"".join((memoryview(body)[:-2], b', "%s"]}' % tag.encode()))
    return body


class _EncodedTagLists:
    """Whole ``tags/list`` bodies of large repositories, reused while the index's tag
    version holds (the encoding, not the lookup, is most of a large list's cost), and
    brought up to date by inserting the new names when the index says those are the
    only change (a tag push: 3,000 names take 37 us to encode, an insertion 5).

    Per process; least recently used dropped first beyond ``limit`` bytes.
    """

    def __init__(self, limit: int = 32 << 20, smallest: int = 1000) -> None:
        self.limit = limit
        self.smallest = smallest
        self.size = 0
        self.bodies: OrderedDict[str, tuple[str, bytes, bool]] = OrderedDict()
        """By repository: the version, its body, whether that is plain (no escapes)."""

    def body(self, name: str, page: Page) -> bytes:
        """The encoded ``{"name", "tags"}`` of ``page``, a whole list."""
        cached = self.bodies.get(name)
        if cached is not None and cached[0] == page.version:
            self.bodies.move_to_end(name)
            return cached[1]
        inserted = None
        if cached is not None and cached[2] and cached[0] == page.since:
            inserted = _with_inserted(cached[1], name, page.entries, page.added)
        # An insertion keeps a plain body plain (only valid tags are inserted).
        body, plain = (inserted, True) if inserted is not None else _encoded(name, page.entries)
        if page.version is not None and len(page.entries) >= self.smallest:
            if cached is not None:
                self.size -= len(cached[1])
            self.bodies[name] = (page.version, body, plain)
            self.size += len(body)
            while self.size > self.limit:
                _, (_, dropped, _) = self.bodies.popitem(last=False)
                self.size -= len(dropped)
        return body


_tag_lists = _EncodedTagLists()


async def tags_list(request: web.Request) -> web.Response:
    repo = repository(request)
    n = page_size(request, None)
    last = request.query.get("last", "")
    page = await repo.tags(n, last)
    if n is None and not last and not page.more:
        return web.Response(body=_tag_lists.body(repo.name, page),
                            content_type="application/json", charset="utf-8")
    headers = {}
    if page.more and page.entries:
        headers["Link"] = _next_link(request, f"{repo.name}/tags/list", n, page.entries[-1])
    return web.json_response({"name": repo.name, "tags": page.entries}, headers=headers)


async def referrers(request: web.Request) -> web.Response:
    repo = repository(request)
    subject = parse_digest(request.match_info["digest"])
    artifact_type = request.query.get("artifactType")
    manifests = await repo.referrers(subject, artifact_type)
    headers = {}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    # Exactly the index media type: json_response would add "; charset=utf-8".
    headers["Content-Type"] = OCI_INDEX
    return web.Response(body=json.dumps(body).encode(), headers=headers)
