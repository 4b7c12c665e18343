"""Soak run: several replicas, steady mixed traffic, expiring tokens and Redis misbehaving.

    .venv/bin/python scripts/soak.py --minutes 2 --replicas 3 --workers 2 --concurrency 12

Starts everything on free loopback ports (a throwaway redis-server without persistence, the
PandaDoc emulator with short-lived rotating single-use tokens that it revokes as soon as it
issues the next, N proxy processes of W workers each), sends mixed traffic (document lists,
uploads whose hash is checked, downloads) for the given time, and makes Redis misbehave three
times while the tokens are being refreshed: a write pause (``CLIENT PAUSE ... WRITE``, what a
failover does) at a fifth of the run, a restart that comes back empty half-way (the replicas
must write the pair back), and a freeze (SIGSTOP) at three quarters. It prints: requests sent,
answers other than 2xx by reason, corrupted bodies, refreshes, the 401s PandaDoc (the
emulator) served in steady state and during the faults, and each proxy's open file
descriptors and resident memory at the start and at the end.

Exits 1 if a request was lost (a body corrupted, a connection error), a client got a 401, a
refresh token was used twice (``invalid_grant``) or the authorization was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from proxy.throwaway_redis import ThrowawayRedis, free_port

REPO = Path(__file__).resolve().parent.parent


def serving_processes(pid: int) -> list[int]:
    """The processes that serve for ``serve`` process ``pid``: its workers, or itself."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children] or [pid]


def proc_status(pid: int) -> tuple[int, int]:
    """(open file descriptors, resident KiB) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return fds, rss


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # It answers.
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


def http_json(method: str, url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as answer:
        return json.load(answer)


async def traffic(
    base_urls: list[str], until: float, concurrency: int, counts: collections.Counter[str]
) -> None:
    rng = random.Random(1)

    async def worker(index: int) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            n = index
            while time.monotonic() < until:
                base = base_urls[n % len(base_urls)]
                n += 1
                kind = n % 3
                try:
                    if kind == 0:
                        async with session.get(f"{base}/public/v1/documents") as response:
                            answer = await response.read()
                    elif kind == 1:
                        body = rng.randbytes(rng.randint(0, 300_000))
                        async with session.post(f"{base}/test/upload", data=body) as response:
                            answer = await response.read()
                            if response.status == 502:
                                counts["detail: " + json.loads(answer)["message"]] += 1
                            if response.status == 200:
                                digest = json.loads(answer)["sha256"]
                                if digest != hashlib.sha256(body).hexdigest():
                                    counts["corrupted upload"] += 1
                    else:
                        async with session.get(f"{base}/test/download?size=200000") as response:
                            answer = await response.read()
                            if response.status == 200 and len(answer) != 200_000:
                                counts["truncated download"] += 1
                    counts["sent"] += 1
                    if response.status >= 300:
                        reason = response.headers.get("X-Proxy-Error", "from PandaDoc")
                        counts[f"{response.status} {reason}"] += 1
                        if response.status >= 500 and "X-Proxy-Error" not in response.headers:
                            # The emulator's error bodies say what failed, never with what.
                            text = answer[:200].decode(errors="replace")
                            counts[f"  {response.status} body: {text}"] += 1
                except aiohttp.ClientError as exc:
                    counts["sent"] += 1
                    counts[f"connection error {type(exc).__name__}"] += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


class Stack:
    """Redis, the emulator and the replicas, as processes; :meth:`close` ends them all."""

    def __init__(self, replicas: int, workers: int, token_lifetime: float) -> None:
        self.workdir = tempfile.mkdtemp(prefix="pandadoc-proxy-soak-")
        self.redis = ThrowawayRedis()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        self.redis.start()
        emulator_port = free_port()
        self.emulator_url = f"http://127.0.0.1:{emulator_port}"
        self._spawn(
            "emulator", "--port", str(emulator_port),
            "--access-token-lifetime", str(token_lifetime),
        )  # fmt: skip
        wait_http(self.emulator_url + "/")
        config = Path(self.workdir, "proxy.yaml")
        config.write_text(
            json.dumps(
                {
                    "upstream": {"base_url": self.emulator_url},
                    "oauth": {
                        "client_id": "emulator-client",
                        "client_secret": "emulator-secret",
                        "token_url": f"{self.emulator_url}/oauth2/access_token",
                    },
                    "redis": {"url": f"redis://127.0.0.1:{self.redis.port}/0"},
                    "tokens": {
                        # After a Redis wipe, refreshes wait this long for a holder that may
                        # be lost.
                        "lock_ttl_s": 10,
                        # Tokens living seconds are refreshed every few: not the misbehaving
                        # token endpoint the ceiling is for.
                        "max_refreshes_per_minute": 0,
                    },
                    "logging": {"level": "warning"},
                }
            )
        )
        pair = http_json("POST", f"{self.emulator_url}/_emulator/tokens")
        subprocess.run(
            [sys.executable, "-m", "proxy", "token", "set", "--config", str(config),
             # "=" form: a token may begin with "-", which argparse takes for an option.
             f"--access-token={pair['access_token']}",
             f"--refresh-token={pair['refresh_token']}",
             f"--expires-in={pair['expires_in']}"],
            cwd=REPO, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ports = [free_port() for _ in range(replicas)]
        self.proxies = [
            self._spawn(
                "serve", "--config", str(config), "--port", str(port), "--workers", str(workers)
            )
            for port in ports
        ]
        self.bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in self.bases:
            wait_http(base + "/_proxy/health")

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        # Closed in close(), after the process that writes to it has ended.
        log = Path(self.workdir, f"{args[0]}-{len(self.processes)}.log").open("wb")  # noqa: SIM115
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", *args], cwd=REPO, stdout=log, stderr=log
        )
        self.processes.append(process)
        return process

    def restart_redis_empty(self) -> None:
        self.redis.stop()
        self.redis.start()  # no persistence: it comes back empty

    def errors(self) -> list[str]:
        """The error lines every process logged (JSON lines at level error, tracebacks)."""
        found = []
        for log in Path(self.workdir).glob("*.log"):
            text = log.read_text(errors="replace")
            for block in text.split("\n{"):
                if '"level":"error"' in block or "Traceback" in block or " ERROR " in block:
                    found.append(f"{log.name}: {block[:300]} ... {block[-1500:]}")
        return found

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()
        self.redis.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)


_FAULT_S = 5.0
#: After a fault starts, how long its consequences may last, not counted as steady state: the
#: fault itself, then the lock's TTL (after a restart that lost the lock, refreshes wait that
#: long for a holder that may have been lost with it), then a token's lifetime (a token that
#: expired meanwhile is renewed on its first 401).
_RECOVERY_S = _FAULT_S + 10.0 + 4.0


async def soak(stack: Stack, minutes: float, concurrency: int) -> dict[str, Any]:
    await traffic(stack.bases, time.monotonic() + 5, concurrency, collections.Counter())  # warm up
    workers = [pid for p in stack.proxies for pid in serving_processes(p.pid)]
    start = {pid: proc_status(pid) for pid in workers}
    counts: collections.Counter[str] = collections.Counter()
    duration = minutes * 60
    began = time.monotonic()
    load = asyncio.ensure_future(traffic(stack.bases, began + duration, concurrency, counts))
    faults = [
        (duration / 5, "write pause", lambda: stack.redis.pause_writes(_FAULT_S)),
        (duration / 2, "restart, empty", stack.restart_redis_empty),
        (duration * 3 / 4, "freeze", lambda: stack.redis.freeze(_FAULT_S)),
    ]
    unauthorized = {"steady": 0, "faults": 0}

    async def served_401s() -> int:
        stats = await asyncio.to_thread(http_json, "GET", f"{stack.emulator_url}/_emulator/stats")
        return int(stats["unauthorized_responses"])

    seen = await served_401s()
    for at, _name, fault in faults:
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        before = await served_401s()
        unauthorized["steady"] += before - seen
        await asyncio.to_thread(fault)
        await asyncio.sleep(max(0.0, began + at + _RECOVERY_S - time.monotonic()))
        seen = await served_401s()
        unauthorized["faults"] += seen - before
    await load
    unauthorized["steady"] += await served_401s() - seen
    end = {pid: proc_status(pid) for pid in workers}
    stats = await asyncio.to_thread(http_json, "GET", f"{stack.emulator_url}/_emulator/stats")
    return {
        "errors": stack.errors(),
        "counts": counts,
        "start": start,
        "end": end,
        "stats": stats,
        "unauthorized": unauthorized,
        "faults": [name for _, name, _ in faults],
    }


def report(result: dict[str, Any], args: argparse.Namespace) -> int:
    counts, stats = result["counts"], result["stats"]
    print(
        f"soak: {args.minutes:g} min, {args.replicas} replicas x {args.workers} workers, "
        f"{args.concurrency} concurrent clients, token lifetime {args.token_lifetime:g} s; "
        f"Redis faults: {', '.join(result['faults'])}"
    )
    print(f"requests sent: {counts['sent']}")
    problems = {k: v for k, v in counts.items() if k != "sent"}
    print("answers other than 2xx, and lost bodies:", json.dumps(problems) if problems else "none")
    print(
        f"token endpoint: {json.dumps(stats.get('token_calls'))}; errors: "
        f"{json.dumps(stats.get('token_errors'))}"
    )
    unauthorized = result["unauthorized"]
    print(
        f"401s PandaDoc served: {unauthorized['steady']} in steady state, "
        f"{unauthorized['faults']} during the faults (the {_RECOVERY_S:g} s after each began)"
    )
    errors = result["errors"]
    print(f"error lines in the logs: {len(errors)}")
    for line in errors[:5]:
        print("  " + line.replace("\n", "\n  "))
    print("worker      fds start/end   RSS MiB start/end")
    for pid, (fds, rss) in result["start"].items():
        end_fds, end_rss = result["end"][pid]
        print(f"{pid:<11} {fds:>4} / {end_fds:<6}  {rss / 1024:>6.1f} / {end_rss / 1024:.1f}")
    lost = sum(
        v for k, v in problems.items()
        if "corrupted" in k or "truncated" in k or "connection error" in k
    )  # fmt: skip
    reused = stats.get("token_errors", {}).get("invalid_grant", 0)
    client_401s = sum(v for k, v in problems.items() if k.startswith("401 "))
    authorization_lost = problems.get("503 authorization_required", 0)
    return 1 if lost or reused or client_401s or authorization_lost else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="serve --workers, per replica")
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=4.0,
        help="seconds an access token lives: refreshes every few seconds",
    )
    args = parser.parse_args()
    stack = Stack(args.replicas, args.workers, args.token_lifetime)
    try:
        result = asyncio.run(soak(stack, args.minutes, args.concurrency))
    finally:
        stack.close()
    return report(result, args)


if __name__ == "__main__":
    sys.exit(main())
