"""The project's benchmark: ``python bench/run.py`` (about 2.5 minutes; ``--quick``: 30 s).

It starts, each as its own process on free loopback ports: a fast upstream
(``bench/upstream.py``), a throwaway ``redis-server`` holding a token pair, ``pandadoc-proxy``
itself (``python -m proxy serve``, JSON access log on, written to a file) and a bare aiohttp
proxy (``bench/baseline_proxy.py``). Then it drives the same load at the upstream directly, at
the bare proxy and at ours, interleaved round after round so that a noisy neighbour hurts all
three alike, and prints one table with ours as a ratio to both, plus the project's targets.
``bench/README.md`` says what each number means.

Every process it starts is stopped on the way out, also on Ctrl-C, SIGTERM and errors; with
Linux's parent-death signal they die even if this script is killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import aiohttp
import uvloop

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (BENCH, REPO):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# After the path set-up, so that this works when imported from elsewhere too.
from loadgen import LoadResult, Tool, available_tool, run_load, wrk_version  # noqa: E402

from proxy.throwaway_redis import redis_server_argv  # noqa: E402

HOST = "127.0.0.1"
SMALL_BYTES = 1024
BIG_BYTES = 1024 * 1024
TARGETS = ("direct", "baseline", "ours")
TOKEN_LIFETIME_S = 365 * 24 * 3600  # A year, as PandaDoc's: no refresh during the run.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: The process whose CPU time is charged to each target: the server the load generator talks to.
SERVER_OF = {"direct": "upstream", "baseline": "baseline", "ours": "ours"}


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    mode: str
    rounds: int
    duration_s: float
    warmup_s: float
    connections: int
    big_connections: int
    loadgen: Tool
    json_path: Path | None
    keep_logs: bool
    max_seconds: float
    serve: bool = False


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        description="Benchmark pandadoc-proxy against the upstream alone and a bare aiohttp proxy."
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="one round of 2 s runs (~30 s)")
    size.add_argument(
        "--smoke", action="store_true", help="one round of 1 s runs, for the test suite (~15 s)"
    )
    parser.add_argument("--rounds", type=int, help="runs per measurement; the best one counts")
    parser.add_argument("--duration", type=float, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, help="seconds of discarded load before measuring")
    parser.add_argument("--connections", type=int, default=64, help="for GET /small (64)")
    parser.add_argument("--big-connections", type=int, default=8, help="for GET /big (8)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), or the Python one",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="only start everything, print the URLs and PIDs, and wait for Ctrl-C "
        "(bounded by --max-seconds): to profile a target under load of your own",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600, help="abort the whole run after this long"
    )
    args = parser.parse_args(argv)
    mode, rounds, duration, warmup = "full", 5, 4.0, 1.0
    if args.quick:
        mode, rounds, duration, warmup = "quick", 1, 2.0, 0.5
    if args.smoke:
        mode, rounds, duration, warmup = "smoke", 1, 1.0, 0.3
    for name, value in (("--rounds", args.rounds), ("--duration", args.duration)):
        if value is not None and value <= 0:
            parser.error(f"{name} must be positive")
    try:
        loadgen = available_tool(args.loadgen)
    except RuntimeError as exc:
        parser.error(str(exc))
    return Settings(
        mode=mode,
        rounds=args.rounds or rounds,
        duration_s=args.duration or duration,
        warmup_s=warmup if args.warmup is None else args.warmup,
        connections=args.connections,
        big_connections=args.big_connections if not args.smoke else min(args.big_connections, 4),
        loadgen=loadgen,
        json_path=args.json,
        keep_logs=args.keep_logs,
        max_seconds=args.max_seconds,
        serve=args.serve,
    )


# --- processes --------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the benchmark dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the process has used so far (/proc/PID/stat)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory_kib(self, field_name: str) -> int | None:
        """``VmHWM`` (peak resident memory) or ``VmRSS`` from /proc, in KiB."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
        return None


class Services:
    """Every process the benchmark starts, each in a process group of its own."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Service] = []

    def start(self, name: str, argv: list[str], *, cwd: Path = REPO) -> Service:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        service = Service(name, process, log_path)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        """SIGTERM every process group, wait up to 10 s in all, then SIGKILL what is left.

        Ctrl-C, SIGTERM and the time limit are held back meanwhile, so they cannot cut the
        clean-up short; they are delivered once it is done."""
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGALRM}
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self._stop_all()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def _stop_all(self) -> None:
        for service in reversed(self.started):
            _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for service in reversed(self.started):
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(service.process, signal.SIGKILL)
                service.process.wait(timeout=5)
        self.started.clear()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is not None:
        return
    # The group is the process's own (start_new_session), so this reaches only what we started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_until(what: str, service: Service, ready: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with status {service.process.returncode}:\n{service.log_tail()}"
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {within_s:g} s:\n{service.log_tail()}")
        time.sleep(0.05)


def http_request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def redis_command(port: int, *args: str) -> bytes:
    """One command over RESP on a fresh connection; returns the raw reply (no client library,
    so no handshake commands of its own show up in the command statistics)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(request.encode())
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return reply
            reply += chunk
            if reply.startswith(b"$"):
                header, _, rest = reply.partition(b"\r\n")
                if len(rest) >= int(header[1:]) + 2:
                    return rest[: int(header[1:])]
            elif reply.endswith(b"\r\n"):
                return reply


def redis_commandstats(port: int) -> dict[str, int]:
    """``INFO commandstats`` as {command: calls}."""
    stats: dict[str, int] = {}
    for line in redis_command(port, "INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            calls = dict(item.split("=", 1) for item in rest.split(","))
            stats[name.removeprefix("cmdstat_")] = int(calls["calls"])
    return stats


@dataclass
class Setup:
    ports: dict[str, int]
    services: dict[str, Service]
    redis_port: int
    access_log: Path


def start_everything(services: Services, workdir: Path) -> Setup:
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    upstream_port, redis_port, baseline_port, ours_port = free_ports(4)
    upstream_url = f"http://{HOST}:{upstream_port}"
    redis_url = f"redis://{HOST}:{redis_port}/0"

    redis_service = start_redis(services, redis_binary, redis_port, workdir)
    upstream = services.start(
        "upstream", [sys.executable, str(BENCH / "upstream.py"), "--port", str(upstream_port)]
    )

    config_path = write_proxy_config(workdir, upstream_url, redis_url)
    wait_until("redis-server", redis_service, lambda: _redis_ping(redis_port), 15)
    _store_token(config_path)
    # The proxy logs (access log included) to stderr, which goes to a file, as in production.
    ours = services.start(
        "ours",
        [
            *(sys.executable, "-m", "proxy", "serve"),
            *("--config", str(config_path), "--port", str(ours_port), "--workers", "1"),
        ],
    )
    baseline = services.start(
        "baseline",
        [
            *(sys.executable, str(BENCH / "baseline_proxy.py")),
            *("--port", str(baseline_port), "--upstream", upstream_url),
        ],
    )
    wait_until("upstream", upstream, lambda: _ok(upstream_port, "/small"), 20)
    wait_until("pandadoc-proxy", ours, lambda: _ok(ours_port, "/_proxy/ready"), 30)
    wait_until("baseline proxy", baseline, lambda: _ok(baseline_port, "/small"), 20)
    return Setup(
        ports={"direct": upstream_port, "baseline": baseline_port, "ours": ours_port},
        services={"upstream": upstream, "redis": redis_service, "baseline": baseline, "ours": ours},
        redis_port=redis_port,
        access_log=ours.log_path,
    )


def start_redis(services: Services, binary: str, port: int, workdir: Path) -> Service:
    """A throwaway redis-server (proxy/throwaway_redis.py): nothing saved, logging to its
    service log."""
    return services.start("redis", redis_server_argv(port, workdir, binary=binary))


def write_proxy_config(
    workdir: Path, upstream_url: str, redis_url: str, *, access_log: bool = True
) -> Path:
    """The proxy's config for a benchmark: every feature on, JSON access log to stderr."""
    config = {
        "upstream": {"base_url": upstream_url, "timeout_s": 30},
        "oauth": {
            "client_id": "bench-client",
            "client_secret": "bench-secret",
            "token_url": f"{upstream_url}/oauth2/access_token",
        },
        "redis": {"url": redis_url, "key_prefix": "bench"},
        "logging": {"level": "info", "format": "json", "access_log": access_log},
    }
    config_path = workdir / "proxy.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML.
    return config_path


def _redis_ping(port: int) -> bool:
    return redis_command(port, "PING").startswith(b"+PONG")


def _ok(port: int, path: str) -> bool:
    return http_request(port, "GET", path)[0] == 200


def _store_token(config_path: Path) -> None:
    """Store a pair with ``pandadoc-proxy token set``, as an operator would, before the proxy
    starts (the command line is the contract; the store's internals may change)."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "proxy", "token", "set", "--config", str(config_path)),
            *("--access-token", "bench-access-token", "--refresh-token", "bench-refresh-token"),
            *("--expires-in", str(TOKEN_LIFETIME_S)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pandadoc-proxy token set failed: {done.stderr.strip()}")


def sanity_check(ports: dict[str, int]) -> None:
    """Each target answers what the upstream serves, and only ours adds a bearer token."""
    upload = b"u" * 100_000
    for target, port in ports.items():
        checks = [
            ("GET /small", http_request(port, "GET", "/small"), (200, SMALL_BYTES)),
            ("GET /big", http_request(port, "GET", "/big"), (200, BIG_BYTES)),
        ]
        for what, (status, body), (want_status, want_len) in checks:
            if (status, len(body)) != (want_status, want_len):
                raise RuntimeError(f"{target}: {what} gave {status} with {len(body)} bytes")
        status, body = http_request(port, "POST", "/echo", upload)
        if (status, body) != (200, str(len(upload)).encode()):
            raise RuntimeError(f"{target}: POST /echo gave {status} {body[:100]!r}")
        want = b"bearer" if target == "ours" else b"none"
        status, body = http_request(port, "GET", "/auth")
        if (status, body) != (200, want):
            raise RuntimeError(f"{target}: GET /auth gave {status} {body!r}, wanted {want!r}")


# --- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    path: str
    connections: int
    body_bytes: int


@dataclass
class Measurements:
    runs: dict[tuple[str, str], list[LoadResult]] = field(default_factory=dict)

    def add(self, scenario: Scenario, target: str, result: LoadResult) -> None:
        self.runs.setdefault((scenario.key, target), []).append(result)

    def best(self, scenario: str, target: str) -> dict[str, float]:
        """Best of the runs: the highest throughput and the lowest of each percentile."""
        runs = self.runs[(scenario, target)]
        cpu = [r.server_cpu_us for r in runs if r.server_cpu_us is not None]
        return {
            "requests_per_s": max(r.requests_per_s for r in runs),
            "p50_ms": min(r.latency_ms.get("p50", float("nan")) for r in runs),
            "p99_ms": min(r.latency_ms.get("p99", float("nan")) for r in runs),
            "cpu_us": min(cpu) if cpu else float("nan"),
        }

    def round_ratios(self, scenario: str) -> list[float]:
        """Ours over the baseline's requests/s, round by round (the two ran seconds apart):
        how far the noise of this shared machine moves a ratio."""
        ours = self.runs[(scenario, "ours")]
        baseline = self.runs[(scenario, "baseline")]
        return [
            o.requests_per_s / b.requests_per_s
            for o, b in zip(ours, baseline, strict=True)
            if b.requests_per_s
        ]

    def errors(self, target: str) -> int:
        return sum(r.errors for (_, t), runs in self.runs.items() if t == target for r in runs)

    def requests(self, target: str) -> int:
        return sum(r.requests for (_, t), runs in self.runs.items() if t == target for r in runs)


def measure(settings: Settings, setup: Setup, log: Callable[[str], None]) -> dict[str, Any]:
    scenarios = [
        Scenario("small_c64", "/small", settings.connections, SMALL_BYTES),
        Scenario("small_c1", "/small", 1, SMALL_BYTES),
        Scenario("big", "/big", settings.big_connections, BIG_BYTES),
    ]

    def one(scenario: Scenario, target: str, duration_s: float) -> LoadResult:
        url = f"http://{HOST}:{setup.ports[target]}{scenario.path}"
        server = setup.services[SERVER_OF[target]]
        cpu_before = server.cpu_seconds()
        result = run_load(
            settings.loadgen,
            url,
            connections=scenario.connections,
            duration_s=duration_s,
            expect_bytes=scenario.body_bytes,
        )
        cpu_after = server.cpu_seconds()
        if cpu_before is not None and cpu_after is not None and result.requests:
            result.server_cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
        return result

    if settings.warmup_s > 0:
        log(f"warming up ({len(scenarios) * len(TARGETS)} runs of {settings.warmup_s:g} s)")
        for scenario in scenarios:
            for target in TARGETS:
                one(scenario, target, settings.warmup_s)

    rss_after_warmup = {
        name: setup.services[name].memory_kib("VmRSS") for name in ("baseline", "ours")
    }
    measurements = Measurements()
    before = redis_commandstats(setup.redis_port)
    for round_index in range(settings.rounds):
        log(f"round {round_index + 1} of {settings.rounds}")
        for scenario in scenarios:
            # Rotate who goes first, so no target always runs right after the same neighbour.
            shift = round_index % len(TARGETS)
            for target in TARGETS[shift:] + TARGETS[:shift]:
                measurements.add(scenario, target, one(scenario, target, settings.duration_s))
    after = redis_commandstats(setup.redis_port)

    # The first INFO is counted in `after` (a command is counted once it has run), so one
    # "info" call in the difference is ours, not the proxy's.
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    delta["info"] = delta.get("info", 0) - 1
    delta = {name: calls for name, calls in delta.items() if calls}
    redis_calls = sum(delta.values())
    proxied = measurements.requests("ours")

    results: dict[str, dict[str, float | None]] = {}
    for target in TARGETS:
        c64 = measurements.best("small_c64", target)
        c1 = measurements.best("small_c1", target)
        big = measurements.best("big", target)
        results[target] = {
            "small_c64_rps": c64["requests_per_s"],
            "small_c64_p50_ms": c64["p50_ms"],
            "small_c64_p99_ms": c64["p99_ms"],
            "small_c64_cpu_us": c64["cpu_us"],
            "small_c1_p50_ms": c1["p50_ms"],
            "small_c1_rps": c1["requests_per_s"],
            "big_mb_per_s": big["requests_per_s"] * BIG_BYTES / 1e6,
            "big_cpu_us": big["cpu_us"],
            "peak_rss_mib": None,
            "rss_after_warmup_mib": None,
            "redis_cmds_per_request": None,
            "errors": float(measurements.errors(target)),
        }
    for name in ("baseline", "ours"):
        peak = setup.services[name].memory_kib("VmHWM")
        warm = rss_after_warmup[name]
        results[name]["peak_rss_mib"] = None if peak is None else peak / 1024
        results[name]["rss_after_warmup_mib"] = None if warm is None else warm / 1024
    results["baseline"]["redis_cmds_per_request"] = 0.0
    results["ours"]["redis_cmds_per_request"] = redis_calls / proxied if proxied else None
    # Latency a proxy adds on top of the upstream's own, on one connection.
    direct_c1 = results["direct"]["small_c1_p50_ms"]
    for target in TARGETS:
        own_c1 = results[target]["small_c1_p50_ms"]
        added = None if own_c1 is None or direct_c1 is None else own_c1 - direct_c1
        results[target]["added_c1_p50_ms"] = added
    return {
        "results": results,
        "round_ratios": {
            "small_c64_rps": measurements.round_ratios("small_c64"),
            "big_mb_per_s": measurements.round_ratios("big"),
        },
        "redis": {"commands": delta, "proxied_requests": proxied},
        "runs": [
            {"scenario": scenario, "target": target, **run.to_json()}
            for (scenario, target), runs in measurements.runs.items()
            for run in runs
        ],
    }


# --- reporting --------------------------------------------------------------------------------

#: (key in results, label, format, higher is better)
ROWS: list[tuple[str, str, str, bool]] = [
    ("small_c64_rps", "GET /small c=64  requests/s", "{:.0f}", True),
    ("small_c64_p50_ms", "GET /small c=64  p50 ms", "{:.3f}", False),
    ("small_c64_p99_ms", "GET /small c=64  p99 ms", "{:.3f}", False),
    ("small_c64_cpu_us", "GET /small c=64  server CPU us/req", "{:.1f}", False),
    ("small_c1_p50_ms", "GET /small c=1   p50 ms", "{:.3f}", False),
    ("added_c1_p50_ms", "GET /small c=1   added p50 ms", "{:+.3f}", False),
    ("big_mb_per_s", "GET /big 1 MiB  MB/s", "{:.1f}", True),
    ("big_cpu_us", "GET /big 1 MiB  server CPU us/req", "{:.0f}", False),
    ("peak_rss_mib", "peak RSS MiB (VmHWM)", "{:.1f}", False),
    ("rss_after_warmup_mib", "RSS after warm-up MiB", "{:.1f}", False),
    ("redis_cmds_per_request", "Redis commands / request", "{:.5f}", False),
    ("errors", "errors (non-200, socket)", "{:.0f}", False),
]

NO_RATIO = {"added_c1_p50_ms", "redis_cmds_per_request", "errors"}


def ratios(results: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for key, *_ in ROWS:
        if key in NO_RATIO:
            continue
        ours = results["ours"].get(key)
        out[key] = {
            "ours/direct": _ratio(ours, results["direct"].get(key)),
            "ours/baseline": _ratio(ours, results["baseline"].get(key)),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(
    results: dict[str, dict[str, float | None]], rounds: dict[str, list[float]]
) -> list[dict[str, Any]]:
    """The project's targets. The throughput ratios are ratios of best-of figures: each
    estimates what a target does when no neighbour disturbs it. The per-round ratios are
    shown beside them, as the spread."""
    ours, base = results["ours"], results["baseline"]
    rps = _ratio(ours["small_c64_rps"], base["small_c64_rps"])
    mbs = _ratio(ours["big_mb_per_s"], base["big_mb_per_s"])
    extra = None
    if ours["added_c1_p50_ms"] is not None and base["added_c1_p50_ms"] is not None:
        extra = ours["added_c1_p50_ms"] - base["added_c1_p50_ms"]
    redis_rate = ours["redis_cmds_per_request"]
    return [
        {
            "target": "GET /small c=64 requests/s >= 0.9x the bare proxy's",
            "value": rps,
            "shown": _with_rounds(rps, rounds["small_c64_rps"]),
            "met": rps is not None and rps >= 0.9,
        },
        {
            "target": "p50 added latency at c=1 within 0.1 ms of the bare proxy's",
            "value": extra,
            "shown": "-" if extra is None else f"{extra:+.3f} ms",
            "met": extra is not None and extra <= 0.1,
        },
        {
            "target": "GET /big MB/s >= the bare proxy's",
            "value": mbs,
            "shown": _with_rounds(mbs, rounds["big_mb_per_s"]),
            "met": mbs is not None and mbs >= 1.0,
        },
        {
            "target": "Redis commands per proxied request < 0.01",
            "value": redis_rate,
            "shown": "-" if redis_rate is None else f"{redis_rate:.5f}",
            "met": redis_rate is not None and redis_rate < 0.01,
        },
    ]


def _with_rounds(ratio: float | None, rounds: list[float]) -> str:
    if ratio is None:
        return "-"
    if len(rounds) < 2:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x (round by round: {' '.join(f'{r:.2f}' for r in rounds)})"


def render(report: dict[str, Any]) -> str:
    results, rat = report["results"], report["ratios"]
    width = max(len(label) for _, label, _, _ in ROWS) + 2
    head = f"{'metric':<{width}}{'direct':>11}{'baseline':>11}{'ours':>11}"
    lines = [head + f"{'ours/direct':>13}{'ours/baseline':>15}", "-" * (len(head) + 28)]
    for key, label, fmt, _ in ROWS:
        cells = []
        for target in TARGETS:
            value = results[target].get(key)
            cells.append(f"{'-' if value is None else fmt.format(value):>11}")
        ratio_cells = ""
        for name, cell_width in (("ours/direct", 13), ("ours/baseline", 15)):
            value = rat.get(key, {}).get(name)
            ratio_cells += f"{'-' if value is None else f'{value:.2f}x':>{cell_width}}"
        lines.append(f"{label:<{width}}{''.join(cells)}{ratio_cells}")
    lines.append("")
    lines.append("targets:")
    for target in report["targets"]:
        verdict = "met" if target["met"] else "MISSED"
        lines.append(f"  {target['target']:<62}{target['shown']:>12}  {verdict}")
    return "\n".join(lines)


def machine_facts(tool: Tool) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": usable,
        "cpu": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": getattr(uvloop, "__version__", "?"),
        "loadgen": wrk_version() if tool == "wrk" else "python (aiohttp client, bench/loadgen.py)",
        "load_average": list(os.getloadavg()),
        "code": code_revision(),
    }


def code_revision() -> str:
    """The commit measured, and whether ``proxy/`` had uncommitted changes (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "proxy"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head} + uncommitted changes in proxy/" if dirty else head


def hold(setup: Setup, max_seconds: float) -> int:
    """``--serve``: say where everything is, then wait for Ctrl-C or the time limit."""
    for target in TARGETS:
        print(f"{target:<9} http://{HOST}:{setup.ports[target]}/small  (also /big, POST /echo)")
    for name, service in setup.services.items():
        print(f"{name:<9} pid {service.pid}  log {service.log_path}")
    print(f"redis    127.0.0.1:{setup.redis_port}", flush=True)
    print(f"waiting for Ctrl-C (at most {max_seconds:g} s)", file=sys.stderr, flush=True)
    signal.pause()  # Ends with the KeyboardInterrupt of Ctrl-C, SIGTERM or the time limit.
    return 0


# --- main -------------------------------------------------------------------------------------


#: Why the run is being stopped, when it is a signal other than Ctrl-C.
_abort_reason: list[str] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and the time limit: act as Ctrl-C does, so every path that stops cleanly on
    Ctrl-C (an event loop cancelling its tasks, ``subprocess.run`` killing wrk) runs."""
    _abort_reason.append(signal.Signals(signum).name)
    signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pandadoc-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def count_lines(path: Path) -> int:
    lines = 0
    with contextlib.suppress(OSError), path.open("rb") as file:
        while chunk := file.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    out: IO[str] = sys.stdout
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    # Ctrl-C raises KeyboardInterrupt even where the shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.setitimer(signal.ITIMER_REAL, settings.max_seconds)
    machine = machine_facts(settings.loadgen)
    try:
        with workdir(settings.keep_logs) as work:
            services = Services(work)
            try:
                log("starting upstream, redis-server, pandadoc-proxy, baseline proxy")
                setup = start_everything(services, work)
                sanity_check(setup.ports)
                if settings.serve:
                    return hold(setup, settings.max_seconds)
                measured = measure(settings, setup, log)
                access_lines = count_lines(setup.access_log)
            finally:
                services.stop_all()
    except KeyboardInterrupt:
        why = _abort_reason[0] if _abort_reason else "SIGINT"
        print(f"benchmark stopped ({why}); every process it started is stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)

    report: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "mode": settings.mode,
            "rounds": settings.rounds,
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
            "connections": settings.connections,
            "big_connections": settings.big_connections,
            "loadgen": settings.loadgen,
        },
        "elapsed_s": round(time.monotonic() - started, 1),
        "access_log_lines": access_lines,
        **measured,
    }
    report["ratios"] = ratios(report["results"])
    report["targets"] = targets(report["results"], report["round_ratios"])

    print(
        f"pandadoc-proxy benchmark: {settings.mode}, {settings.rounds} round(s) of "
        f"{settings.duration_s:g} s per run, best of {settings.rounds}; "
        f"GET /big with {settings.big_connections} connections",
        file=out,
    )
    print(
        f"machine: {machine['cores']} cores ({machine['cpu'] or 'unknown cpu'}), "
        f"Python {machine['python']}, aiohttp {machine['aiohttp']}, uvloop {machine['uvloop']}, "
        f"load generator: {machine['loadgen']}, load average at start "
        f"{machine['load_average'][0]:.2f}",
        file=out,
    )
    print(f"code: {machine['code']}", file=out)
    print(
        f"ours: access log on (JSON, to a file): {access_lines} lines; Redis calls during the "
        f"measured phase: {report['redis']['commands'] or 'none'} for "
        f"{report['redis']['proxied_requests']} proxied requests",
        file=out,
    )
    print("", file=out)
    print(render(report), file=out)
    load_end = os.getloadavg()[0]
    report["machine"]["load_average_end"] = load_end
    print(f"\nelapsed {report['elapsed_s']} s; load average at the end {load_end:.2f}", file=out)
    busy = max(machine["load_average"][0], load_end)
    if busy > 1.5:
        print(
            f"note: the machine was busy (load average up to {busy:.2f}), so throughput and "
            "latency are noisy; server CPU us/req is the steadiest figure.",
            file=out,
        )
    if settings.json_path is not None:
        settings.json_path.write_text(json.dumps(report, indent=2) + "\n")
    errors = sum(int(report["results"][t]["errors"] or 0) for t in TARGETS)
    if errors:
        print(f"benchmark failed: {errors} requests failed during the load", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
