"""``log`` (and the deprecated top-level ``loglevel``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from dockyard.config.section import Section
from dockyard.config.tree import Map, at, describe, fail, plain

LogLevel = Literal["error", "warn", "info", "debug"]
LogFormatter = Literal["text", "json", "logstash"]


@dataclass(frozen=True, kw_only=True)
class AccessLogConfig:
    """``log.accesslog``."""

    disabled: bool = False


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    """``log``: level (also the deprecated top-level ``loglevel``), formatter, fields."""

    level: LogLevel = "info"
    formatter: LogFormatter = "text"
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Static fields added to every log line."""
    access_log: AccessLogConfig = field(default_factory=AccessLogConfig)


def read_log(top: Section) -> LogConfig:
    """The validated ``log`` section; unknown keys become warnings."""
    s = top.section("log")
    levels = ("error", "warn", "info", "debug")
    level = top.choice("loglevel", levels, "info")  # deprecated, but still honoured
    if top.raw("loglevel") is not None:
        top.warnings.append(
            f'"loglevel" is deprecated: use "log.level"{at(top.here("loglevel").where)}'
        )
    level = s.choice("level", levels, level)
    fields = s.raw("fields")
    if fields is not None and not isinstance(fields, Map):
        raise fail(("log", "fields"), fields, f"expected a mapping, got {describe(fields)}")
    access = s.section("accesslog")
    result = LogConfig(
        level=cast(LogLevel, level),
        formatter=cast(LogFormatter, s.choice("formatter", ("text", "json", "logstash"), "text")),
        fields=plain(fields) or {},
        access_log=AccessLogConfig(disabled=access.flag("disabled")),
    )
    access.done()
    s.done()
    return result
