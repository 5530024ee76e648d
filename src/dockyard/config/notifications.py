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
class SpoolConfig:
    """``notifications.spool`` (dockyard extension): where queued events wait.

    ``directory`` defaults to ``<rootdirectory>/notifications-spool`` with the
    filesystem driver; with another driver and no directory, queued events are kept
    in memory and lost on restart (as in distribution). ``maxevents`` bounds each
    endpoint's queue: past it the oldest events are dropped (counted and logged).
    """

    directory: str = ""
    max_events: int = 100_000


@dataclass(frozen=True, kw_only=True)
class NotificationsConfig:
    """``notifications``."""

    endpoints: tuple[EndpointConfig, ...] = ()
    events: EventsConfig = field(default_factory=EventsConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)


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
    spool = s.section("spool")
    result = NotificationsConfig(
        endpoints=tuple(endpoints),
        events=EventsConfig(include_references=events.flag("includereferences")),
        spool=SpoolConfig(
            directory=spool.text("directory"),
            max_events=spool.integer("maxevents", 100_000, minimum=1),
        ),
    )
    events.done()
    spool.done()
    s.done()
    return result
