"""CPU instructions per proxied request, counted by valgrind's callgrind: a figure that does not
depend on what else the machine is doing.

Throughput and CPU time on a shared machine drift by 20-30 % from one run to the next, which
hides a change of a few percent. Callgrind counts the instructions a process executes, the same
for the same code and the same requests however loaded the machine is. This script runs the
bare aiohttp proxy and ours under callgrind (each ~50 times slower than normal), sends each
the same warm-up and then exactly ``--requests`` GETs of 1 KiB, and prints the instructions
per request of each and their ratio.

    .venv/bin/python bench/instructions.py                 # about a minute
    .venv/bin/python bench/instructions.py --requests 2000
    .venv/bin/python bench/instructions.py --no-access-log  # what the access log costs

Needs valgrind (``apt-get install valgrind``) and redis-server. The upstream runs natively.
Instructions are not time (a cache miss or a system call counts as little), so this is a
guide for comparing versions of the code, next to ``bench/run.py``, not a replacement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from run import (  # noqa: E402  (bench/ is not a package)
    HOST,
    Services,
    _ok,
    _redis_ping,
    _signal_group,
    _store_token,
    free_ports,
    start_redis,
    wait_until,
    write_proxy_config,
)


async def send(port: int, count: int, concurrency: int) -> int:
    """Send ``count`` GET /small with ``concurrency`` connections; returns how many got 200."""
    ok = 0
    remaining = count
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal ok, remaining
            while remaining > 0:
                remaining -= 1
                async with session.get(f"http://{HOST}:{port}/small") as response:
                    await response.read()
                    ok += response.status == 200

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return ok


def callgrind_total(out_file: Path) -> int:
    """The instruction count of one callgrind dump ('summary:' or 'totals:' line)."""
    text = out_file.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction total in {out_file}")
    return int(match.group(1))


def measure(
    services: Services, name: str, command: list[str], port: int, args: argparse.Namespace
) -> float:
    out = services.workdir / f"{name}.callgrind"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    process = services.start(name, [*valgrind, *command]).process
    try:
        deadline = time.monotonic() + 300
        while not _ok_quietly(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start under valgrind; see {services.workdir}")
            time.sleep(0.5)
        asyncio.run(send(port, args.warmup, args.concurrency))
        # Zero the counters, count exactly the requests below, dump.
        callgrind_control = ["callgrind_control", "--zero", str(process.pid)]
        subprocess.run(callgrind_control, check=True, capture_output=True)
        ok = asyncio.run(send(port, args.requests, args.concurrency))
        callgrind_control[1] = "--dump"
        subprocess.run(callgrind_control, check=True, capture_output=True)
        if ok != args.requests:
            raise RuntimeError(f"{name}: only {ok} of {args.requests} requests got 200")
        dumps = sorted(services.workdir.glob(f"{name}.callgrind.*"))
        requests: int = args.requests
        return callgrind_total(dumps[-1]) / requests
    finally:
        _signal_group(process, signal.SIGTERM)
        process.wait(30)


def _ok_quietly(port: int) -> bool:
    try:
        return _ok(port, "/small")
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--no-access-log", action="store_true", help="run ours without its access log"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("redis-server") is None:
        print("needs valgrind and redis-server (apt-get install valgrind redis-server)")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="pandadoc-instructions-"))
    upstream_port, redis_port, baseline_port, ours_port = free_ports(4)
    upstream_url = f"http://{HOST}:{upstream_port}"
    services = Services(workdir)
    try:
        redis = start_redis(services, "redis-server", redis_port, workdir)
        upstream = services.start(
            "upstream",
            [sys.executable, str(BENCH / "upstream.py"), "--port", str(upstream_port)],
        )
        config_path = write_proxy_config(
            workdir,
            upstream_url,
            f"redis://{HOST}:{redis_port}/0",
            access_log=not args.no_access_log,
        )
        wait_until("redis-server", redis, lambda: _redis_ping(redis_port), 15)
        wait_until("upstream", upstream, lambda: _ok(upstream_port, "/small"), 20)
        _store_token(config_path)
        baseline = measure(
            services,
            "baseline",
            [
                sys.executable,
                str(BENCH / "baseline_proxy.py"),
                *("--port", str(baseline_port), "--upstream", upstream_url),
            ],
            baseline_port,
            args,
        )
        ours = measure(
            services,
            "ours",
            [
                *(sys.executable, "-m", "proxy", "serve", "--config", str(config_path)),
                *("--port", str(ours_port), "--workers", "1"),
            ],
            ours_port,
            args,
        )
    finally:
        services.stop_all()
    figures = {
        "requests": args.requests,
        "baseline_instructions_per_request": round(baseline),
        "ours_instructions_per_request": round(ours),
        "ours_over_baseline": round(ours / baseline, 3),
    }
    print(f"instructions per GET /small ({args.requests} requests, {args.concurrency} at once)")
    print(f"  baseline proxy   {baseline:12,.0f}")
    print(f"  pandadoc-proxy   {ours:12,.0f}   {ours / baseline:.2f}x the baseline")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
