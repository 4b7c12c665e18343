"""Prometheus metrics, one registry per application.

A registry per app (rather than prometheus-client's global one) lets several apps live in one
process, as they do in the tests and in ``demo``. Labels never carry raw paths, whose number is
unbounded: requests are counted by method and status class only.

The figures every request updates (:class:`RequestMetrics`) are plain numbers, exposed by a
custom collector at scrape time: prometheus-client takes a thread lock per increment and per
histogram observation, five of them per request, which cost more than the counting. Only the
event loop's thread writes them, and scrapes run on that thread too, so no lock is needed.
The rare ones (refreshes, errors, lock waits) stay prometheus-client objects.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .tokens import StoredPair
from .tokens.events import Trigger
from .tokens.model import AUTHORIZATION_STATES

__all__ = ["LockFreeHistogram", "ProxyMetrics", "RequestMetrics", "TokenMetrics"]

# The *_created series double every counter's output and say nothing an operator needs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

# Clients may send any token as a method: others are counted as OTHER, to keep the label set
# bounded.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class LockFreeHistogram:
    """A histogram as counts per bucket; written by one thread only (see the module doc)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # The last one is +Inf.
        self.total = 0.0

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less than or equal": the first bound >= value.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            # prometheus-client's own spelling of a bound ("1.0", "+Inf"), untyped there.
            cumulative.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
        return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=self.total)


# prometheus-client's default buckets, as its Histogram had them.
_DEFAULT_BUCKETS = Histogram.DEFAULT_BUCKETS[:-1]
_ADDED_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10)


class RequestMetrics(Collector):
    """What every request updates: requests by method and status class, in flight, latencies."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._requests: dict[tuple[str, int], int] = {}
        #: From sending a request to PandaDoc to its response headers.
        self.upstream_seconds = LockFreeHistogram(_DEFAULT_BUCKETS)
        #: The wait before a response's headers go out, less PandaDoc's part of it.
        self.proxy_added_seconds = LockFreeHistogram(_ADDED_BUCKETS)

    def count_request(self, method: str, status: int) -> None:
        key = (method if method in _KNOWN_METHODS else "OTHER", status // 100)
        self._requests[key] = self._requests.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "pandadoc_proxy_requests",
            "Forwarded requests, by method and response status class.",
            labels=["method", "status_class"],
        )
        for (method, status_hundreds), count in sorted(self._requests.items()):
            requests.add_metric([method, f"{status_hundreds}xx"], count)
        yield requests
        yield GaugeMetricFamily(
            "pandadoc_proxy_in_flight_requests",
            "Requests being forwarded right now.",
            value=self.in_flight,
        )
        yield self.upstream_seconds.family(
            "pandadoc_proxy_upstream_seconds",
            "Time from sending a request to PandaDoc to its response headers.",
        )
        yield self.proxy_added_seconds.family(
            "pandadoc_proxy_added_seconds",
            "Time the proxy adds before a response's headers go out: the whole wait minus "
            "PandaDoc's own time to headers (includes refreshes and replays).",
        )


class TokenMetrics:
    """The token code's events (``tokens/events.py``) as metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refreshes = Counter(
            "pandadoc_proxy_refreshes",
            "Token refreshes this replica attempted, by outcome (ok, failed, rejected, fenced, "
            "ceiling) and trigger (rejected: PandaDoc refused a token; proactive; expired: the "
            "held token was past its expiry; manual).",
            ["outcome", "trigger"],
            registry=registry,
        )
        self.lock_wait_seconds = Histogram(
            "pandadoc_proxy_refresh_lock_wait_seconds",
            "Time a renewal waited for the refresh lock or for another replica's new pair.",
            registry=registry,
        )
        self.redis_errors = Counter(
            "pandadoc_proxy_redis_errors",
            "Token store operations that failed on Redis (unreachable, timed out, refused).",
            registry=registry,
        )
        self.pending_writes = Gauge(
            "pandadoc_proxy_pair_write_pending",
            "1 while a new token pair PandaDoc issued is served from memory because its write "
            "to the token store has not landed yet.",
            registry=registry,
        )
        self.abandoned_writes = Counter(
            "pandadoc_proxy_pair_writes_abandoned",
            "New token pairs lost because the process stopped before their write landed.",
            registry=registry,
        )

    def refreshed(self, outcome: str, trigger: Trigger) -> None:
        self.refreshes.labels(outcome, trigger).inc()

    def waited_for_lock(self, seconds: float) -> None:
        self.lock_wait_seconds.observe(seconds)

    def store_failed(self) -> None:
        self.redis_errors.inc()

    def write_pending(self, pending: bool) -> None:
        self.pending_writes.inc() if pending else self.pending_writes.dec()

    def write_abandoned(self) -> None:
        self.abandoned_writes.inc()


@dataclass(frozen=True)
class ProxyMetrics:
    registry: CollectorRegistry
    #: The hot path's figures (see RequestMetrics).
    requests: RequestMetrics
    proxy_errors: Counter
    replays: Counter
    #: What the token code reports (refreshes, lock waits, Redis errors, pending writes).
    tokens: TokenMetrics
    token_expires_in: Gauge
    authorization_state: Gauge
    notices_up: Gauge

    @classmethod
    def create(cls) -> ProxyMetrics:
        registry = CollectorRegistry(auto_describe=True)
        requests = RequestMetrics()
        registry.register(requests)
        return cls(
            registry=registry,
            requests=requests,
            proxy_errors=Counter(
                "pandadoc_proxy_errors",
                "Answers the proxy gave on its own behalf, by contract error code.",
                ["code"],
                registry=registry,
            ),
            replays=Counter(
                "pandadoc_proxy_replays",
                "Requests sent again with a renewed token after PandaDoc rejected the first.",
                registry=registry,
            ),
            tokens=TokenMetrics(registry),
            token_expires_in=Gauge(
                "pandadoc_proxy_token_expires_in_seconds",
                "Seconds until the access token held by this replica expires (NaN if unknown).",
                registry=registry,
            ),
            authorization_state=Gauge(
                "pandadoc_proxy_authorization_state",
                "1 for the state this replica sees: connected, refresh_failing, "
                "authorization_required, not_connected, api_key.",
                ["state"],
                registry=registry,
            ),
            notices_up=Gauge(
                "pandadoc_proxy_token_notices_up",
                "1 while this replica hears the token store's notices of new pairs (else it "
                "re-reads the pair every second).",
                registry=registry,
            ),
        )

    def watch_credentials(
        self,
        state: Callable[[], str],
        held: Callable[[], StoredPair | None] = lambda: None,
        listening: Callable[[], bool] = lambda: False,
    ) -> None:
        """Compute the authorization gauges at scrape time from the credentials' state, the
        pair held (if any) and whether the store's notices are heard."""

        def expires_in() -> float:
            pair = held()
            left = pair.seconds_left(time.time()) if pair else None
            return float("nan") if left is None else left

        self.token_expires_in.set_function(expires_in)
        self.notices_up.set_function(lambda: float(listening()))

        def is_state(name: str) -> Callable[[], float]:
            return lambda: float(state() == name)

        for name in AUTHORIZATION_STATES:
            self.authorization_state.labels(name).set_function(is_state(name))
