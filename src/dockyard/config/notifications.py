"""``notifications``: webhook endpoints and event options."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.config.section import Headers, Section


@dataclass(frozen=True, kw_only=True)
class IgnoreConfig:
    """``notifications.endpoints[].ignore``."""

    media_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """One of ``notifications.endpoints``; zero durations and threshold take the defaults."""

    name: str
    url: str
    disabled: bool = False
    headers: Headers = field(default_factory=dict)
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    ignored_media_types: tuple[str, ...] = ()
    ignore: IgnoreConfig = field(default_factory=IgnoreConfig)


@dataclass(frozen=True, kw_only=True)
class EventsConfig:
    """``notifications.events``."""

    include_references: bool = False


@dataclass(frozen=True, kw_only=True)
class NotificationsConfig:
    """``notifications``."""

    endpoints: tuple[EndpointConfig, ...] = ()
    events: EventsConfig = field(default_factory=EventsConfig)


def read_notifications(s: Section) -> NotificationsConfig:
    """The validated ``notifications`` section; unknown keys become warnings."""
    endpoints = []
    for e in s.sequence("endpoints"):
        ignore = e.section("ignore")
        endpoints.append(
            EndpointConfig(
                name=e.required("name"),
                url=e.url("url", required=True),
                disabled=e.flag("disabled"),
                headers=e.headers("headers"),
                timeout=e.duration("timeout", 0.0) or 1.0,
                threshold=e.integer("threshold") or 10,
                backoff=e.duration("backoff", 0.0) or 1.0,
                ignored_media_types=e.strings("ignoredmediatypes"),
                ignore=IgnoreConfig(
                    media_types=ignore.strings("mediatypes"), actions=ignore.strings("actions")
                ),
            )
        )
        ignore.done()
        e.done()
    events = s.section("events")
    result = NotificationsConfig(
        endpoints=tuple(endpoints),
        events=EventsConfig(include_references=events.flag("includereferences")),
    )
    events.done()
    s.done()
    return result
