"""Metrics of a replica, not of a worker: what a scrape shows under ``serve --workers N``.

Each worker counts in its own process, with plain numbers (metrics.py); nothing here touches
a request. The supervisor makes a private directory and names it to every worker
(``--metrics-dir``). Each worker writes a snapshot of its whole registry there, atomically
(a temporary file renamed over the last one), every :data:`SNAPSHOT_INTERVAL_S` and at
shutdown. A scrape lands on any one worker; that worker writes its own snapshot first, then
reads every worker's snapshot, its own included, and merges them the way prometheus-client's
multiprocess mode does: counters, histograms and summaries are summed; each gauge is merged
by the mode :data:`GAUGE_MERGE` names for it (in-flight requests summed; the token gauges
taken whole from the worker that holds the newest pair, so that they do not flap from one
worker to the next while a new pair reaches them all).

Why every worker's snapshot, its own included, rather than the scraped worker's live figures
plus the others' snapshots: only the first never goes backwards. Two workers, A and B, and
``requests_total``:

- t=0.0: A's snapshot says 10 (A has answered 10 requests), B's says 10.
- t=0.1: A answers 5 more. Its live figure is 15, its snapshot still says 10 (the next is
  due at t=0.5).
- t=0.2: a scrape lands on A. Live plus snapshot: 15 + 10 = 25.
- t=0.3: the next scrape lands on B: B's live 10 + A's snapshot 10 = 20. The counter went
  backwards, and Prometheus takes that for a restart of the replica: every rate is wrong.

With snapshots only, the scrape at t=0.2 first replaces A's snapshot (15), then reads both
files: 25. Every later scrape, on either worker, reads A's file at 15 or more. A worker's
file only ever grows (it is replaced whole, never half-written), so the sum over the files
only grows too: a scrape never shows a figure that has not been published for the next scrape
to read. The price: another worker's figures are up to :data:`SNAPSHOT_INTERVAL_S` old.

The files of a worker that has stopped stay until the supervisor exits, so its counts never
leave the sum while the replica runs. Without a supervisor (``--workers 1``, the tests,
``demo``) none of this runs: the metrics route exposes the registry as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .keys import METRICS, TOKENS
from .tokens import StoredPair

__all__ = [
    "GAUGE_MERGE",
    "METRICS_SHARING",
    "SNAPSHOT_INTERVAL_S",
    "SharedMetrics",
    "Snapshot",
    "merge",
    "share_metrics",
    "snapshots_parent",
]

log = logging.getLogger("pandadoc_proxy.metrics")

#: How often each worker publishes its snapshot (a scrape also publishes the scraped one's).
SNAPSHOT_INTERVAL_S = 0.5

GaugeMerge = Literal["sum", "max", "min", "freshest"]

#: How each gauge of metrics.py is merged over the workers; a test checks that every gauge in
#: the registry is named here. ``sum``: each worker's share of a whole (requests in flight).
#: ``freshest``: the value of the worker holding the newest token pair (ties: the scraped
#: worker's), for what describes the replica's pair rather than the worker: summing those
#: would be meaningless, and any one worker's value would flap while a new pair spreads.
GAUGE_MERGE: Mapping[str, GaugeMerge] = {
    "pandadoc_proxy_in_flight_requests": "sum",
    "pandadoc_proxy_token_expires_in_seconds": "freshest",
    "pandadoc_proxy_authorization_state": "freshest",
    # 1 when any worker serves a pair whose write has not landed yet.
    "pandadoc_proxy_pair_write_pending": "max",
    # 1 only while every worker hears the store's notices.
    "pandadoc_proxy_token_notices_up": "min",
}
_SUMMED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


@dataclass(frozen=True)
class Snapshot:
    """One worker's registry as it stood at ``written_at``."""

    pid: int
    written_at: float
    #: Orders the workers' token pairs, newest highest (``freshest`` gauges).
    freshness: tuple[float, ...]
    families: list[Metric]

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "written_at": self.written_at,
                "freshness": list(self.freshness),
                "families": [
                    {
                        "name": family.name,
                        "documentation": family.documentation,
                        "type": family.type,
                        "unit": family.unit,
                        "samples": [[s.name, s.labels, s.value] for s in family.samples],
                    }
                    for family in self.families
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        families = []
        for entry in data["families"]:
            family = Metric(entry["name"], entry["documentation"], entry["type"], entry["unit"])
            for name, labels, value in entry["samples"]:
                family.add_sample(name, labels, value)
            families.append(family)
        return cls(data["pid"], data["written_at"], tuple(data["freshness"]), families)


def merge(
    snapshots: Sequence[Snapshot],
    *,
    own_pid: int,
    gauge_modes: Mapping[str, GaugeMerge] = GAUGE_MERGE,
) -> list[Metric]:
    """The workers' snapshots as one registry's families, in the order they first appear."""

    def rank(snapshot: Snapshot) -> tuple[tuple[float, ...], bool, float]:
        return snapshot.freshness, snapshot.pid == own_pid, snapshot.written_at

    by_name: dict[str, list[tuple[Snapshot, Metric]]] = {}
    for snapshot in snapshots:
        for family in snapshot.families:
            by_name.setdefault(family.name, []).append((snapshot, family))
    merged = []
    for name, found in by_name.items():
        first = found[0][1]
        out = Metric(first.name, first.documentation, first.type, first.unit)
        mode = gauge_modes.get(name, "sum") if first.type == "gauge" else None
        if first.type in _SUMMED_TYPES or mode in ("sum", "max", "min"):
            combine = _COMBINE[mode or "sum"]
            values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            labels_of: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, str]] = {}
            for _, family in found:
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    labels_of.setdefault(key, sample.labels)
                    values[key] = (
                        combine(values[key], sample.value) if key in values else sample.value
                    )
            for key, value in values.items():
                out.add_sample(key[0], labels_of[key], value)
        else:  # freshest, and types that cannot be added up (info, stateset, unknown)
            _, family = max(found, key=lambda pair: rank(pair[0]))
            for sample in family.samples:
                out.add_sample(sample.name, sample.labels, sample.value)
        merged.append(out)
    return merged


def _max(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)


def _min(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else min(a, b)


_COMBINE: Mapping[str, Callable[[float, float], float]] = {
    "sum": lambda a, b: a + b,
    "max": _max,
    "min": _min,
}


def pair_freshness(pair: StoredPair | None) -> tuple[float, ...]:
    """Newer pairs rank higher: obtained later, or the same pair written since (a version up:
    a failed refresh noted, the authorization lost)."""
    if pair is None:
        return (-math.inf, -math.inf)
    return (pair.obtained_at, float(pair.version))


class SharedMetrics:
    """This worker's part in the replica's metrics: publishing its snapshot, merging all."""

    def __init__(
        self,
        directory: Path,
        registry: CollectorRegistry,
        freshness: Callable[[], tuple[float, ...]],
    ) -> None:
        self.directory = directory
        self._registry = registry
        self._freshness = freshness
        self._pid = os.getpid()
        self._path = directory / f"{self._pid}.json"
        self._temporary = directory / f".{self._pid}.json.tmp"
        self._write_failed = False

    def publish(self) -> None:
        """Replace this worker's snapshot with the registry as it is now."""
        snapshot = Snapshot(
            self._pid, time.time(), self._freshness(), list(self._registry.collect())
        )
        try:
            fd = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, snapshot.to_json().encode())
            finally:
                os.close(fd)
            os.replace(self._temporary, self._path)
        except OSError as exc:
            if not self._write_failed:  # Once: it fails every half second until fixed.
                log.warning(
                    "cannot write this worker's metrics snapshot",
                    extra={"event": "metrics_snapshot_failed", "detail": str(exc)},
                )
            self._write_failed = True
        else:
            self._write_failed = False

    def snapshots(self) -> list[Snapshot]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(Snapshot.from_json(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "unreadable metrics snapshot left out",
                    extra={"event": "metrics_snapshot_unreadable", "detail": f"{path}: {exc}"},
                )
        return found

    def exposition(self) -> bytes:
        """The replica's metrics in the text format: own snapshot first, then every one."""
        self.publish()
        return generate_latest(_Families(merge(self.snapshots(), own_pid=self._pid)))

    async def keep_publishing(self, interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.publish()


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


METRICS_SHARING: web.AppKey[SharedMetrics] = web.AppKey("metrics_sharing", SharedMetrics)


def snapshots_parent() -> str | None:
    """Where the supervisor should make the snapshots' directory: in memory (``/dev/shm``)
    where there is one, else the temporary directory (None). Replacing a file on ext4 costs
    about 0.5 ms, on tmpfs 0.03 ms, and a snapshot goes out every half second per worker."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def share_metrics(app: web.Application, directory: Path) -> None:
    """Make ``app`` one worker of a replica whose snapshots live in ``directory``."""

    def freshness() -> tuple[float, ...]:
        tokens = app.get(TOKENS)
        return pair_freshness(tokens.held if tokens is not None else None)

    sharing = SharedMetrics(directory, app[METRICS].registry, freshness)
    app[METRICS_SHARING] = sharing

    async def publishing_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sharing.keep_publishing(), name="metrics-snapshots")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sharing.publish()  # The last figures, requests drained, for the scrapes still to come.

    app.cleanup_ctx.append(publishing_ctx)
