"""The encoded body of a whole tags/list: json.dumps's output, made faster."""

from __future__ import annotations

import json
import random

import pytest

from dockyard.api import listing
from dockyard.api.listing import tags_json
from dockyard.metadata import Page


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


class _Counting:
    """Counts the full encodings of an ``_EncodedTagLists`` (an insertion is not one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        encode = listing._plain_tags_json

        def counted(name: str, tags: list[str]) -> bytes | None:
            self.calls += 1
            return encode(name, tags)

        monkeypatch.setattr(listing, "_plain_tags_json", counted)


def test_a_kept_body_takes_the_names_inserted_since_its_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = _Counting(monkeypatch)
    bodies = listing._EncodedTagLists(smallest=10)
    rng = random.Random(7)
    tags = sorted(f"t{i:05d}" for i in range(0, 6000, 2))
    version = 0
    body = bodies.body("library/app", Page(tags, False, str(version)))
    assert counting.calls == 1
    for step in range(60):
        # 0 to 3 new names: before the first, after the last, anywhere between.
        new = {rng.choice(["A", "zz", "t"]) + f"{rng.randrange(10**6):06d}-{step}"
               for _ in range(rng.randrange(4))}
        new -= set(tags)
        tags = sorted({*tags, *new})
        page = Page(tags, False, str(version + 1), str(version), tuple(sorted(new)))
        version += 1
        body = bodies.body("library/app", page)
        assert body == json.dumps({"name": "library/app", "tags": tags}).encode(), step
    assert counting.calls == 1  # every later body was the kept one with insertions


@pytest.mark.parametrize("case", ["other version", "not a valid tag", "escaped body",
                                  "not in the list"])
def test_a_body_that_cannot_take_the_insertion_is_encoded_again(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    counting = _Counting(monkeypatch)
    bodies = listing._EncodedTagLists(smallest=2)
    tags = ["a", "b", "d"]
    if case == "escaped body":
        tags = ['a"q', "b", "d"]
    bodies.body("r", Page(tags, False, "1"))
    calls = counting.calls
    added: tuple[str, ...] = ("c",)
    since = "1"
    new = sorted([*tags, "c"])
    if case == "other version":
        since = "0"
    elif case == "not a valid tag":
        added = ("c, d",)
        new = sorted([*tags, "c, d"])
    elif case == "not in the list":
        new = tags  # the index said "c" was inserted; the list has no "c"
    body = bodies.body("r", Page(new, False, "2", since, added))
    assert body == json.dumps({"name": "r", "tags": new}).encode()
    assert counting.calls == calls + 1


def test_nothing_inserted_keeps_the_body_under_the_new_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = _Counting(monkeypatch)
    bodies = listing._EncodedTagLists(smallest=2)
    tags = ["a", "b"]
    first = bodies.body("r", Page(tags, False, "1"))
    assert bodies.body("r", Page(tags, False, "2", "1", ())) is first
    assert bodies.body("r", Page(tags, False, "2")) is first
    assert counting.calls == 1
