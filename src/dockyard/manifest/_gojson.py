"""JSON read and written the way Go's ``encoding/json`` does it.

distribution and libtrust are Go programs, and two of their habits decide what a
registry accepts and the exact bytes it serves:

* **Reading into structs.** A struct field takes the value of the *last* member whose
  key equals the field name, compared case-insensitively (``"MediaType"`` fills
  ``mediaType``); ``null`` leaves a string, number or struct field alone but sets a
  slice, map or pointer field to nil. Maps keep their keys exactly. :func:`field`
  reproduces this, so dockyard reads the same values Go clients read.
* **Writing.** Map keys are sorted, strings escape ``<``, ``>``, ``&``, U+2028 and
  U+2029, numbers (decoded as ``float64``) print in Go's shortest form, and
  ``MarshalIndent`` lays out nested values as ``json.Indent`` does. :func:`marshal`
  reproduces this, so signatures that libtrust would re-serialize come out byte for
  byte as libtrust writes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "GoStruct", "JSONObject", "field", "has_field", "loads", "marshal", "member", "quote",
]


class JSONObject(dict[str, Any]):
    """A decoded JSON object that also remembers its members in document order.

    As a ``dict`` it has Go map semantics (exact keys, the last duplicate wins); its
    :attr:`pairs` let :func:`field` apply Go's struct-field matching.
    """

    __slots__ = ("_folded", "pairs")

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs
        self._folded: dict[str, list[Any]] | None = None

    def folded(self) -> dict[str, list[Any]]:
        """Member values by case-folded key, in document order; built on first use, so
        reading a descriptor's seven fields folds each key once, not seven times."""
        index = self._folded
        if index is None:
            index = {}
            for key, value in self.pairs:
                index.setdefault(key.translate(_FOLD), []).append(value)
            self._folded = index
        return index


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def loads(data: bytes) -> Any:
    """Decode ``data`` as Go would accept it; raise ``ValueError`` if it is not JSON.

    Invalid UTF-8 inside strings becomes U+FFFD (as in Go) rather than an error;
    ``NaN``/``Infinity`` and a byte-order mark are refused (as in Go).
    """
    return json.loads(
        data.decode("utf-8", "replace"),
        object_pairs_hook=JSONObject,
        parse_constant=_reject_constant,
    )


# Go compares struct field names with Unicode simple case folding; beyond ASCII only
# the long s and the Kelvin sign fold onto ASCII letters.
_FOLD = str.maketrans(
    {**{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}, "\u017f": "s", "\u212a": "k"}
)


def has_field(obj: JSONObject, name: str) -> bool:
    """True if some member of ``obj`` would be decoded into struct field ``name``."""
    return name.lower() in obj.folded()


def field(obj: JSONObject, name: str, *, null_resets: bool = False) -> Any:
    """The value Go's decoder puts in struct field ``name`` (``None`` when unset).

    ``null_resets`` says the Go field is a slice, map or pointer, which a ``null``
    member sets back to nil; for strings, numbers and structs ``null`` is ignored.
    """
    return member(obj.folded(), name.lower(), null_resets)


def member(folded: dict[str, list[Any]], wanted: str, null_resets: bool = False) -> Any:
    """:func:`field` on an object's :meth:`JSONObject.folded` members, ``wanted`` already
    lower-case (for readers that take several fields of one object)."""
    values = folded.get(wanted)
    if not values:
        return None
    if null_resets:
        return values[-1]
    for value in reversed(values):
        if value is not None:
            return value
    return None


class GoStruct(tuple[tuple[str, Any], ...]):
    """Members of a Go struct in declaration order (already minus omitted ones)."""

    __slots__ = ()


def quote(text: str) -> str:
    """``text`` as a JSON string literal, escaped exactly as Go's encoder escapes it."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if code < 0x80:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in "<>&" or code < 0x20:
                escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
                out.append(escapes.get(ch, f"\\u{code:04x}"))
            else:
                out.append(ch)
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate from a \ud800-style escape: Go decoded it as U+FFFD.
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(value: float | int) -> str:
    """A number as Go writes a ``float64`` (``strconv.FormatFloat`` 'f' or 'e', -1)."""
    number = float(value)  # OverflowError for integers beyond float64, as Go refuses them
    if not math.isfinite(number):
        raise ValueError(f"unsupported value: {value!r}")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    # Imported here: decimal costs every process 0.35 MiB, and only marshal() (schema1's
    # signatures) comes this way.
    from decimal import Decimal

    shortest = Decimal(repr(number)).normalize()
    magnitude = abs(number)
    if 1e-6 <= magnitude < 1e21:
        return f"{shortest:f}"
    _sign, digits, exponent = shortest.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    power = exponent + len(text) - 1
    sign = "-" if number < 0 else ""
    # Go prints at least two exponent digits, then trims "e-07" to "e-7".
    exp = f"e+{power:02d}" if power >= 0 else (f"e-{-power}" if -power < 10 else f"e-{-power:02d}")
    return f"{sign}{mantissa}{exp}"


def marshal(value: Any, *, prefix: str = "", indent: str | None = None) -> str:
    """Go's ``json.Marshal`` (``indent`` None) or ``json.MarshalIndent(value, prefix, indent)``.

    ``value`` may hold :class:`GoStruct` (members in order), mappings (keys sorted),
    lists/tuples, strings, numbers (as ``float64``), booleans and ``None``.
    """
    parts: list[str] = []
    _encode(value, parts, 0, prefix, indent)
    return "".join(parts)


def _newline(parts: list[str], depth: int, prefix: str, indent: str | None) -> None:
    if indent is not None:
        parts.append("\n" + prefix + indent * depth)


def _encode_members(
    members: Iterable[tuple[str, Any]],
    parts: list[str],
    depth: int,
    prefix: str,
    indent: str | None,
) -> None:
    colon = ": " if indent is not None else ":"
    empty = True
    for key, item in members:
        parts.append("{" if empty else ",")
        empty = False
        _newline(parts, depth + 1, prefix, indent)
        parts.append(quote(key) + colon)
        _encode(item, parts, depth + 1, prefix, indent)
    if empty:
        parts.append("{}")
        return
    _newline(parts, depth, prefix, indent)
    parts.append("}")


def _encode(value: Any, parts: list[str], depth: int, prefix: str, indent: str | None) -> None:
    if isinstance(value, GoStruct):
        _encode_members(value, parts, depth, prefix, indent)
    elif isinstance(value, Mapping):
        _encode_members(sorted(value.items()), parts, depth, prefix, indent)
    elif isinstance(value, list | tuple):
        if not value:
            parts.append("[]")
            return
        for index, item in enumerate(value):
            parts.append("," if index else "[")
            _newline(parts, depth + 1, prefix, indent)
            _encode(item, parts, depth + 1, prefix, indent)
        _newline(parts, depth, prefix, indent)
        parts.append("]")
    elif isinstance(value, str):
        parts.append(quote(value))
    elif value is None:
        parts.append("null")
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, int | float):
        parts.append(_number(value))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")
