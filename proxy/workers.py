"""``serve --workers N``: N replicas in N processes, sharing one port through SO_REUSEPORT.

Each worker is a complete replica (its own event loop, client pool, token cache and replica
id), exactly as if it ran on another machine: they coordinate only through Redis. The kernel
spreads new connections over the workers' listening sockets.

This process supervises them: it checks that the port can be had (so "port in use" is one line
and exit status 1, not N), starts the workers with ``serve --workers 1 --reuse-port``, passes
SIGTERM/SIGINT on, and exits 0 once every worker has stopped. A worker that dies on its own
takes the others down with it (exit status 1), so that the process manager above (systemd,
Kubernetes) restarts a whole, known-good set rather than a silently shrunken one. The
workers share their metrics through a private directory that ``serve`` names to them
(``--metrics-dir``, metrics_merge.py), so that a scrape shows the replica's figures whichever
worker it reaches.

The default number of workers is the number of CPUs the process may use
(:func:`default_workers`): its CPU affinity, and its cgroup CPU quota.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = [
    "WorkerCount",
    "affinity_cpus",
    "cgroup_cpu_limit",
    "check_port_free",
    "default_workers",
    "supervise",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How soon a stop is passed on to the workers: the signal handler only notes it.
_POLL_S = 0.05


@dataclass(frozen=True)
class WorkerCount:
    count: int
    #: Why that many, for the start-up line: "CPU affinity allows 2".
    reason: str

    def describe(self) -> str:
        return f"{self.count} worker{'s' if self.count != 1 else ''} ({self.reason})"


def default_workers(
    affinity: int, cgroup_root: Path = CGROUP_ROOT, membership: str | None = None
) -> WorkerCount:
    """One worker per CPU the process may use: ``affinity`` CPUs (``os.sched_getaffinity``,
    which a container's cpuset or ``taskset`` narrows), fewer if a cgroup CPU quota allows
    less (rounded up: a quota of 1.5 CPUs gets 2 workers), at least 1.

    ``membership`` is the text of ``/proc/self/cgroup`` (read when None); ``cgroup_root`` is
    where the cgroup file systems are mounted. Never the host's core count: in a pod limited
    to one CPU on a 64-core node, ``os.cpu_count()`` says 64.
    """
    if membership is None:
        try:
            membership = PROC_SELF_CGROUP.read_text()
        except OSError:
            membership = ""
    affinity = max(affinity, 1)
    quota = cgroup_cpu_limit(cgroup_root, membership)
    if quota is not None and math.ceil(quota) < affinity:
        count = max(math.ceil(quota), 1)
        spelt = f"{quota:g} CPU{'s' if quota != 1 else ''}"
        rounded = "" if count == quota else f", rounded up to {count}"
        return WorkerCount(count, f"cgroup CPU quota of {spelt}{rounded}")
    return WorkerCount(affinity, f"CPU affinity allows {affinity}")


def cgroup_cpu_limit(cgroup_root: Path, membership: str) -> float | None:
    """The CPUs the cgroup quota allows this process (``1.5``), or None without a quota.

    ``membership`` lists the process's cgroups as ``/proc/self/cgroup`` does: ``0::/path`` on
    cgroup v2 (quota in ``cpu.max``: "150000 100000", or "max 100000" for none), lines such
    as ``4:cpu,cpuacct:/path`` on v1 (``cpu.cfs_quota_us``, -1 for none, over
    ``cpu.cfs_period_us``). A quota anywhere between the process's cgroup and the root
    applies, so the smallest one counts. In a container the process's own cgroup is usually
    mounted as the root (cgroup namespaces); where the path named in ``membership`` does not
    exist under the mount, the mount itself is the process's cgroup.
    """
    controllers_v1: dict[str, str] = {}
    path_v2: str | None = None
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            path_v2 = path
        for controller in controllers.split(","):
            controllers_v1[controller] = path
    if "cpu" in controllers_v1:
        for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            if (cgroup_root / mount).is_dir():
                return _smallest_quota(cgroup_root / mount, controllers_v1["cpu"], _v1_quota)
        return None
    if path_v2 is not None and (cgroup_root / "cgroup.controllers").exists():
        return _smallest_quota(cgroup_root, path_v2, _v2_quota)
    return None


def _smallest_quota(mount: Path, path: str, read: Callable[[Path], float | None]) -> float | None:
    """The smallest quota from the process's cgroup (``path`` under ``mount``) up."""
    own = mount / path.strip("/")
    if not own.is_dir():
        own = mount
    quotas = []
    for directory in (own, *own.parents):
        quota = read(directory)
        if quota is not None:
            quotas.append(quota)
        if directory == mount:
            break
    return min(quotas) if quotas else None


def _v2_quota(directory: Path) -> float | None:
    try:
        limit, period = (directory / "cpu.max").read_text().split()
        return int(limit) / int(period) if limit != "max" and int(period) > 0 else None
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def affinity_cpus() -> int:
    """CPUs this process may run on (all of them where the platform cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


def check_port_free(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on with SO_REUSEPORT, or None if it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def supervise(
    worker_args: Sequence[str],
    count: int,
    grace_s: float,
    *,
    stop_requested: Callable[[], bool] = lambda: False,
) -> int:
    """Run ``count`` workers (``python -m proxy <worker_args>``) until a
    signal, then stop them, giving each ``grace_s`` seconds to drain. Returns the exit status.

    ``stop_requested`` says whether SIGTERM/SIGINT came before this function took them over
    (while the configuration was being read, say).

    A stop may come at any moment, also while workers are still starting: the handler only
    notes it; this loop forwards SIGTERM to every worker started so far and starts no more.
    A worker that the signal ended before it could take the signals over (still importing,
    say) exits by that signal, and that is a clean stop, not a failure.
    """
    stops: list[int] = []

    def note_stop(signum: int, frame: FrameType | None) -> None:
        stops.append(signum)

    previous = {sig: signal.signal(sig, note_stop) for sig in STOP_SIGNALS}
    if stop_requested():
        stops.append(signal.SIGTERM)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        command = [sys.executable, "-m", "proxy", *worker_args]
        for _ in range(count):
            if stops:
                break
            workers.append(subprocess.Popen(command))
        while not stops and all(worker.poll() is None for worker in workers):
            time.sleep(_POLL_S)
        died_on_its_own = not stops
        if died_on_its_own:
            print("pandadoc-proxy: a worker exited; stopping the others", file=sys.stderr)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s + 5
        for worker in workers:
            try:
                worker.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if died_on_its_own:
        return 1
    return 0 if all(_stopped_cleanly(worker) for worker in workers) else 1


def _stopped_cleanly(worker: subprocess.Popen[bytes]) -> bool:
    """Whether a worker of a stopping replica stopped as it should: exit status 0, or ended
    by a stop signal before it had taken the signals over. The signal is the one forwarded,
    or one sent to the whole group: a terminal's Ctrl-C, systemd's default KillMode."""
    return worker.returncode == 0 or -worker.returncode in STOP_SIGNALS
