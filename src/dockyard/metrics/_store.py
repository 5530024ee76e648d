"""Metric values kept in plain Python objects: a few hundred nanoseconds per update.

prometheus-client's own metrics take a lock per update and, in its multiprocess mode,
write an mmapped file (3-4 µs each on this project's machine: some 15 per request,
a third of a blob HEAD's cost). Here an update is an attribute increment on the event
loop's thread; prometheus-client only renders a scrape (:class:`StoreCollector`).

With several workers, each writes a snapshot of its values to a directory once a
second (:meth:`Store.snapshot`, JSON, written by the caller off the event loop) and
the scraped worker sums every snapshot with its own live values (:func:`merged`):
counters and histograms of every worker that ever ran, gauges of the live ones.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = [
    "Counter",
    "Family",
    "Gauge",
    "Histogram",
    "Store",
    "merged",
    "read_snapshots",
    "write_snapshot",
]

Kind = Literal["counter", "gauge", "histogram"]


class Counter:
    """One labelled counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Gauge:
    """One labelled gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        # An int while only whole steps are added (requests in flight): small ints are
        # shared objects, where each float step would make a new one.
        self.value: float = 0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class Histogram:
    """One labelled histogram: a count per bucket (not cumulative; the last is +Inf)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


Child = Counter | Gauge | Histogram


@dataclass
class Family:
    """A metric name with its label names; :meth:`labels` gives one child per value tuple."""

    name: str
    documentation: str
    kind: Kind
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    children: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def labels(self, *values: str) -> Any:
        """The child for ``values`` (created at first use), a Counter, Gauge or Histogram."""
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {self.labelnames}, got {values}")
            if self.kind == "histogram":
                child = Histogram(self.buckets)
            else:
                child = Counter() if self.kind == "counter" else Gauge()
            self.children[values] = child
        return child

    def share(self, child: Counter | Gauge | Histogram, *values: str) -> None:
        """Make ``child`` (another family's) this family's child for ``values`` too: one
        update counts under both names (a value exported under two generations of names)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: labels {self.labelnames}, got {values}")
        self.children[values] = child


class Store:
    """Every family of one process."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def add(self, family: Family) -> Family:
        if family.name in self.families:
            raise ValueError(f"metric {family.name} is defined twice")
        self.families[family.name] = family
        return family

    def snapshot(self) -> dict[str, Any]:
        """A copy of every value, as JSON-ready data (taken on the loop, written elsewhere)."""
        out: dict[str, Any] = {}
        for name, f in self.families.items():
            samples: list[Any] = []
            for values, child in f.children.items():
                if f.kind == "histogram":
                    samples.append([list(values), list(child.counts), child.sum])
                else:
                    samples.append([list(values), child.value])
            out[name] = {"kind": f.kind, "doc": f.documentation, "labels": list(f.labelnames),
                         "buckets": list(f.buckets), "samples": samples}
        return {"pid": os.getpid(), "families": out}


def merged(snapshots: Iterable[dict[str, Any]], live: Iterable[int]) -> Iterator[Metric]:
    """The sum of ``snapshots`` as metric families; gauges only of the pids in ``live``."""
    alive = set(live)
    meta: dict[str, dict[str, Any]] = {}
    sums: dict[str, dict[tuple[str, ...], Any]] = {}
    for snap in snapshots:
        for name, f in snap["families"].items():
            if f["kind"] == "gauge" and snap["pid"] not in alive:
                continue
            meta.setdefault(name, f)
            per = sums.setdefault(name, {})
            for sample in f["samples"]:
                key = tuple(sample[0])
                if f["kind"] == "histogram":
                    counts, total = per.get(key, ([0] * len(sample[1]), 0.0))
                    per[key] = ([a + b for a, b in zip(counts, sample[1], strict=True)],
                                total + sample[2])
                else:
                    per[key] = per.get(key, 0.0) + sample[1]
    for name, f in meta.items():
        yield _family(name, f, sums.get(name, {}))


def _family(name: str, f: dict[str, Any], samples: dict[tuple[str, ...], Any]) -> Metric:
    labels = f["labels"]
    metric: Metric
    if f["kind"] == "counter":
        metric = CounterMetricFamily(name, f["doc"], labels=labels)
        for key, value in samples.items():
            metric.add_metric(list(key), value)
    elif f["kind"] == "gauge":
        metric = GaugeMetricFamily(name, f["doc"], labels=labels)
        for key, value in samples.items():
            metric.add_metric(list(key), value)
    else:
        metric = HistogramMetricFamily(name, f["doc"], labels=labels)
        bounds = [*(_le(b) for b in f["buckets"]), "+Inf"]
        for key, (counts, total) in samples.items():
            running, cumulative = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            metric.add_metric(list(key), cumulative, total)
    return metric


def _le(bound: float) -> str:
    return repr(float(bound))


def read_snapshots(directory: str, skip_pid: int) -> list[dict[str, Any]]:
    """Every worker's last snapshot in ``directory`` but ``skip_pid``'s (blocking I/O)."""
    found = []
    for entry in os.scandir(directory):
        if not entry.name.endswith(".json") or entry.name == f"{skip_pid}.json":
            continue
        try:
            with open(entry.path, encoding="utf-8") as f:
                found.append(json.load(f))
        except (OSError, ValueError):
            continue  # a worker replacing its file right now: next scrape
    return found


def write_snapshot(directory: str, snapshot: dict[str, Any]) -> None:
    """Replace this worker's snapshot file atomically (blocking I/O)."""
    path = os.path.join(directory, f"{snapshot['pid']}.json")
    partial = path + ".tmp"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(snapshot, f, separators=(",", ":"))
    os.replace(partial, path)
