"""The OpenAPI description (``dockyard/api/openapi.yaml``) is valid and matches the router.

A route added without describing it, or a description left behind by a removed
route, fails here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from aiohttp import web
from openapi_spec_validator import validate
from tests.support.routes import router_routes

from dockyard.api.openapi import OPENAPI_PATH, document, openapi_handler

_METHODS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}


def _described() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in _METHODS
    }


def test_the_document_is_valid_openapi() -> None:
    validate(document())


def test_every_route_is_described() -> None:
    missing = router_routes() - _described()
    assert not missing, f"routes without a description in openapi.yaml: {sorted(missing)}"


def test_everything_described_is_routed() -> None:
    extra = _described() - router_routes()
    assert not extra, f"described in openapi.yaml but not routed: {sorted(extra)}"


def test_the_document_describes_where_it_is_served() -> None:
    assert OPENAPI_PATH in document()["paths"]


def test_operation_ids_are_unique() -> None:
    ids = [
        operation["operationId"]
        for item in document()["paths"].values()
        for method, operation in item.items()
        if method in _METHODS
    ]
    assert len(ids) == len(set(ids))


def test_the_handler_serves_the_document_below_its_prefix() -> None:
    async def served(prefix: str) -> Any:
        handler = openapi_handler(prefix)
        first, again = [await handler(cast(web.Request, None)) for _ in range(2)]
        assert isinstance(first.body, bytes) and first.body == again.body
        return json.loads(first.body)

    assert asyncio.run(served("")) == json.loads(json.dumps(document()))
    assert asyncio.run(served("/registry/")) == {
        **json.loads(json.dumps(document())), "servers": [{"url": "/registry"}]}
