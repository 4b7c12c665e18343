"""Prometheus metrics, one registry per application.

A registry per app (rather than prometheus-client's global one) lets several apps live in one
process, as they do in the tests and in ``demo``. Labels never carry raw paths, whose number is
unbounded: requests are counted by method and status class only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from .tokens import StoredPair
from .tokens.model import AUTHORIZATION_STATES, authorization_state

__all__ = ["ProxyMetrics", "status_class"]

# The *_created series double every counter's output and say nothing an operator needs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def method_label(method: str) -> str:
    # Clients may send any token as a method; keep the label set bounded.
    return method if method in _KNOWN_METHODS else "OTHER"


@dataclass(frozen=True)
class ProxyMetrics:
    # Looked up on every request: the labelled children are cached (see count_request).
    registry: CollectorRegistry
    requests: Counter
    in_flight: Gauge
    upstream_seconds: Histogram
    proxy_errors: Counter
    replays: Counter
    refreshes: Counter
    proxy_added_seconds: Histogram
    lock_wait_seconds: Histogram
    redis_errors: Counter
    token_expires_in: Gauge
    authorization_state: Gauge
    _request_children: dict[tuple[str, int], Any] = field(default_factory=dict)

    @classmethod
    def create(cls) -> ProxyMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            requests=Counter(
                "pandadoc_proxy_requests",
                "Forwarded requests, by method and response status class.",
                ["method", "status_class"],
                registry=registry,
            ),
            in_flight=Gauge(
                "pandadoc_proxy_in_flight_requests",
                "Requests being forwarded right now.",
                registry=registry,
            ),
            upstream_seconds=Histogram(
                "pandadoc_proxy_upstream_seconds",
                "Time from sending a request to PandaDoc to its response headers.",
                registry=registry,
            ),
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
            refreshes=Counter(
                "pandadoc_proxy_refreshes",
                "Token refreshes this replica attempted, by outcome (ok, failed, rejected, "
                "fenced) and trigger (rejected: PandaDoc refused a token; proactive; manual).",
                ["outcome", "trigger"],
                registry=registry,
            ),
            proxy_added_seconds=Histogram(
                "pandadoc_proxy_added_seconds",
                "Time the proxy adds before a response's headers go out: the whole wait minus "
                "PandaDoc's own time to headers (includes refreshes and replays).",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10),
                registry=registry,
            ),
            lock_wait_seconds=Histogram(
                "pandadoc_proxy_refresh_lock_wait_seconds",
                "Time a renewal waited for the refresh lock or for another replica's new pair.",
                registry=registry,
            ),
            redis_errors=Counter(
                "pandadoc_proxy_redis_errors",
                "Token store operations that failed because Redis was unreachable.",
                registry=registry,
            ),
            token_expires_in=Gauge(
                "pandadoc_proxy_token_expires_in_seconds",
                "Seconds until the access token held by this replica expires (NaN if unknown).",
                registry=registry,
            ),
            authorization_state=Gauge(
                "pandadoc_proxy_authorization_state",
                "1 for the state this replica sees: connected, refresh_failing, "
                "authorization_required, not_connected.",
                ["state"],
                registry=registry,
            ),
        )

    def count_request(self, method: str, status: int) -> None:
        """``requests.labels(...).inc()``, with the labelled child looked up once per pair."""
        key = (method, status // 100)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(method_label(method), status_class(status))
            self._request_children[key] = child
        child.inc()

    def watch_tokens(self, held: Callable[[], StoredPair | None]) -> None:
        """Compute the token gauges at scrape time from what ``held()`` returns."""

        def expires_in() -> float:
            pair = held()
            left = pair.seconds_left(time.time()) if pair else None
            return float("nan") if left is None else left

        self.token_expires_in.set_function(expires_in)

        def is_state(state: str) -> Callable[[], float]:
            return lambda: float(authorization_state(held()) == state)

        for state in AUTHORIZATION_STATES:
            self.authorization_state.labels(state).set_function(is_state(state))
