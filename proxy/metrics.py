"""Prometheus metrics, one registry per application.

A registry per app (rather than prometheus-client's global one) lets several apps live in one
process, as they do in the tests and in ``demo``. Labels never carry raw paths, whose number is
unbounded: requests are counted by method and status class only.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ProxyMetrics", "status_class"]

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def method_label(method: str) -> str:
    # Clients may send any token as a method; keep the label set bounded.
    return method if method in _KNOWN_METHODS else "OTHER"


@dataclass(frozen=True)
class ProxyMetrics:
    registry: CollectorRegistry
    requests: Counter
    in_flight: Gauge
    upstream_seconds: Histogram
    proxy_errors: Counter
    replays: Counter
    refreshes: Counter

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
        )
