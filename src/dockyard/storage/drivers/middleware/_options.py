"""Reading one middleware's ``options`` with the drivers' :class:`ParameterReader`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.storage.drivers.params import DriverConfigError, ParameterReader

__all__ = ["OptionReader"]


class OptionReader(ParameterReader):
    """Typed reads of ``middleware.storage`` entry ``name``'s options; errors name
    ``middleware.storage.<name>.<key>``."""

    def __init__(self, name: str, options: Mapping[str, Any], known: frozenset[str]) -> None:
        super().__init__(name, options, known)

    def fail(self, key: str, message: str) -> DriverConfigError:
        return DriverConfigError(f"middleware.storage.{self.driver}.{key}: {message}")

    def check_unknown(self) -> None:
        unknown = sorted(set(self.params) - self.known)
        if unknown:
            raise self.fail(
                unknown[0],
                f"unsupported option of the {self.driver} storage middleware "
                f"(supported: {', '.join(sorted(self.known))})",
            )
