"""Drive HTTP load at one URL and measure it: ``wrk`` when installed, else Python (aiohttp).

Both back ends give the same :class:`LoadResult`: completed requests, requests per second,
body bytes per second, latency percentiles, errors. The Python one keeps ``connections``
keep-alive connections busy for a fixed duration, each running one request after another and
timing it from sending to the last byte of the body, as ``wrk`` does.

    python bench/loadgen.py http://127.0.0.1:8091/small -c 64 -d 5
    python bench/loadgen.py http://127.0.0.1:8091/small -c 64 -d 5 --tool python
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import uvloop

Tool = Literal["wrk", "python"]

__all__ = ["LoadResult", "Tool", "available_tool", "run_load", "wrk_version"]


@dataclass
class LoadResult:
    tool: str
    url: str
    connections: int
    duration_s: float
    requests: int
    errors: int
    requests_per_s: float
    #: Bytes of response bodies per second (wrk: everything read, headers included).
    bytes_per_s: float
    #: Latency percentiles in milliseconds: "p50", "p90", "p99".
    latency_ms: dict[str, float] = field(default_factory=dict)
    #: CPU time the server under test spent per completed request, in microseconds; filled
    #: in by the caller, who knows which process that is (None when not measured).
    server_cpu_us: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def available_tool(preferred: str = "auto") -> Tool:
    """``wrk`` if asked for or installed (``auto``), else ``python``."""
    if preferred == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preferred == "wrk":
        raise RuntimeError("wrk is not installed (apt-get install wrk), use --loadgen python")
    return "python"


def wrk_version() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        return "not installed"
    # wrk prints its version in the usage text, on stdout or stderr depending on the build.
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"wrk\s+(\S+)", done.stdout + done.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


def run_load(
    tool: Tool,
    url: str,
    *,
    connections: int,
    duration_s: float,
    expect_bytes: int | None = None,
) -> LoadResult:
    """One measured run; returns when it is over (bounded by ``duration_s`` plus 30 s)."""
    if tool == "wrk":
        return _run_wrk(url, connections=connections, duration_s=duration_s)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(
            _run_python(
                url, connections=connections, duration_s=duration_s, expect_bytes=expect_bytes
            )
        )


# --- wrk --------------------------------------------------------------------------------------

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2)]


def _bytes(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([KMGT]?B)", text)
    if match is None:
        raise ValueError(f"unexpected wrk size {text!r}")
    return float(match.group(1)) * _BYTE_UNITS[match.group(2)]


def parse_wrk(output: str, *, url: str, connections: int) -> LoadResult:
    """Read the text ``wrk --latency`` prints into a :class:`LoadResult`."""
    total = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+\w+)", output)
    if total is None or rate is None or transfer is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    latency = {
        f"p{pct}": round(_seconds(value) * 1000, 4)
        for pct, value in re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    }
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return LoadResult(
        tool="wrk",
        url=url,
        connections=connections,
        duration_s=_seconds(total.group(2)),
        requests=int(total.group(1)),
        errors=errors,
        requests_per_s=float(rate.group(1)),
        bytes_per_s=_bytes(transfer.group(1)),
        latency_ms=latency,
    )


def _run_wrk(url: str, *, connections: int, duration_s: float) -> LoadResult:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed")
    # One thread: it drives tens of thousands of requests per second, and every other core
    # is left to the servers being measured.
    argv = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=False,
        start_new_session=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout, url=url, connections=connections)


# --- Python (aiohttp) -------------------------------------------------------------------------


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def _run_python(
    url: str, *, connections: int, duration_s: float, expect_bytes: int | None
) -> LoadResult:
    latencies: list[float] = []
    counts = {"errors": 0, "bytes": 0}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    ) as session:
        start = time.perf_counter()
        end = start + duration_s

        async def worker() -> None:
            while (began := time.perf_counter()) < end:
                try:
                    async with session.get(url) as response:
                        size = 0
                        async for chunk in response.content.iter_any():
                            size += len(chunk)
                        ok = response.status == 200 and (
                            expect_bytes is None or size == expect_bytes
                        )
                except (aiohttp.ClientError, TimeoutError):
                    ok, size = False, 0
                finished = time.perf_counter()
                if finished > end:
                    break  # Finished after the window: not counted, as with wrk.
                if ok:
                    latencies.append(finished - began)
                    counts["bytes"] += size
                else:
                    counts["errors"] += 1
                    await asyncio.sleep(0.01)  # Never spin on a refused connection.

        async with asyncio.timeout(duration_s + 30):
            await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = min(time.perf_counter(), end) - start
    latencies.sort()
    return LoadResult(
        tool="python",
        url=url,
        connections=connections,
        duration_s=elapsed,
        requests=len(latencies),
        errors=counts["errors"],
        requests_per_s=len(latencies) / elapsed,
        bytes_per_s=counts["bytes"] / elapsed,
        latency_ms={f"p{p}": percentile(latencies, p) * 1000 for p in (50, 90, 99)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    result = run_load(
        available_tool(args.tool), args.url, connections=args.connections, duration_s=args.duration
    )
    print(json.dumps(result.to_json(), indent=2))


if __name__ == "__main__":
    main()
