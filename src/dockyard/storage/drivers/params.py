"""Reading a driver's ``storage.<driver>`` parameters, the same way for every driver.

A driver's parameter class reads the free-form mapping through :class:`ParameterReader`
(typed reads with defaults and ranges, then :meth:`ParameterReader.check_unknown`), so
every problem is a :class:`DriverConfigError` naming its key as the config loader names
its own: ``storage.s3.chunksize: 1024 is out of range: ...``. :func:`missing_extra` is
the error for a driver whose optional dependencies are not installed.

Nothing here imports from above the driver layer; durations are read with the root
:func:`dockyard.durations.parse_duration`, as the config loader reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.durations import parse_duration

__all__ = ["DriverConfigError", "ParameterReader", "missing_extra"]


class DriverConfigError(ValueError):
    """The driver cannot be built from its ``storage.<driver>`` parameters."""


def missing_extra(driver: str, exc: ImportError) -> DriverConfigError:
    """The error for a driver whose extra (``pip install 'dockyard[<driver>]'``) is absent."""
    return DriverConfigError(
        f"storage.{driver}: the {driver} driver needs the {driver!r} extra "
        f"(pip install 'dockyard[{driver}]'): {exc}"
    )


class ParameterReader:
    """Typed reads of one driver's parameter mapping (keys lower-cased).

    ``known`` is every key the driver accepts; :meth:`check_unknown`, called once all
    are read, refuses the others. An absent key, or one given without a value
    (``None``), reads as its default.
    """

    def __init__(self, driver: str, params: Mapping[str, Any], known: frozenset[str]) -> None:
        self.driver = driver
        self.known = known
        self.params = {str(k).lower(): v for k, v in params.items()}

    def fail(self, key: str, message: str) -> DriverConfigError:
        """The error for a bad value of ``key``."""
        return DriverConfigError(f"storage.{self.driver}.{key}: {message}")

    def check_unknown(self) -> None:
        unknown = sorted(set(self.params) - self.known)
        if unknown:
            raise self.fail(
                unknown[0],
                f"unsupported parameter of the {self.driver} storage driver "
                f"(supported: {', '.join(sorted(self.known))})",
            )

    def _value(self, key: str) -> Any:
        assert key in self.known, key  # a driver reads only keys it declares
        return self.params.get(key)

    def string(self, key: str, default: str = "") -> str:
        value = self._value(key)
        if value is None:
            return default
        if isinstance(value, Mapping | list | tuple):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return str(value).strip()

    def required(self, key: str) -> str:
        """A string that must be given and not empty."""
        value = self.string(key)
        if not value:
            raise self.fail(key, "missing (required)")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._value(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "t", "true"}:
                return True
            if lowered in {"0", "f", "false"}:
                return False
        raise self.fail(key, f"expected a boolean, got {value!r}")

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._value(key)
        if value is None or value == "":
            number = default
        elif isinstance(value, bool):
            raise self.fail(key, f"expected an integer, got {value!r}")
        elif isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise self.fail(key, f"expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise self.fail(key, f"{number} is out of range: between {low} and {high}")
        return number

    def duration(self, key: str, default: str) -> float:
        """Seconds in a Go duration (``100ms``, ``1h30m``); see :func:`parse_duration`."""
        text = self.string(key) or default
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def mapping(self, key: str, what: str) -> Mapping[str, Any] | None:
        """A nested mapping (``what`` says what it should hold), or None if absent."""
        value = self._value(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected {what}, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}


