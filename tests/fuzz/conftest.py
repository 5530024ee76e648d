"""Fuzz campaigns: they check dockyard's own code, so they run against dockyard only."""

from __future__ import annotations

import pytest
from tests.support.api import TARGET


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if TARGET == "dockyard":
        return
    skip = pytest.mark.skip(reason="fuzz campaigns test dockyard's code, not distribution's")
    for item in items:
        if item.path.parent.name == "fuzz":
            item.add_marker(skip)
