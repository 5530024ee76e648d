"""The encoded body of a whole tags/list: json.dumps's output, made faster."""

from __future__ import annotations

import json

import pytest

from dockyard.api.listing import tags_json


@pytest.mark.parametrize("tags", [
    [], ["latest"], [f"t{i:05d}" for i in range(3000)], ["v1.0", "v1.0-rc_1", "Z"],
    # What a rebuild from storage may read from directory names: escaped as json.dumps does.
    ['x"y'], ["a\\b"], ["tab\there"], ["new\nline"], ["\x7f"], ["caf\u00e9"], ["a b"],
    ["a", 'b", "c'], ["\U0001f600"],
])
def test_the_body_is_what_json_dumps_writes(tags: list[str]) -> None:
    body = tags_json("library/app", tags)
    assert body == json.dumps({"name": "library/app", "tags": tags}).encode()
    assert json.loads(body) == {"name": "library/app", "tags": tags}
