"""``serve``'s workers: how many by default (CPU affinity and cgroup quota), and stopping them.

The count is worked out by a function that reads a cgroup tree given to it, tested here against
fake trees in tmp_path for cgroup v2 and v1; then ``serve`` itself under ``taskset``. The
stopping tests send SIGTERM to real ``serve --workers 2`` processes at the moments that once
gave exit status 1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import REPO, ProxyProcess, free_port, wait_until, write_config

from proxy.config import Config
from proxy.workers import affinity_cpus, cgroup_cpu_limit, default_workers


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cgroup_v2(root: Path, cpu_max: dict[str, str]) -> Path:
    """A cgroup v2 mount at ``root`` with ``cpu.max`` in the given cgroups ("" is the root)."""
    write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    for group, value in cpu_max.items():
        write(root / group / "cpu.max", value + "\n")
    return root


def cgroup_v1(root: Path, mount: str, quotas: dict[str, tuple[int, int]]) -> Path:
    """Cgroup v1 with the cpu controller mounted at ``root/mount``; quotas per cgroup."""
    for group, (quota, period) in quotas.items():
        write(root / mount / group / "cpu.cfs_quota_us", f"{quota}\n")
        write(root / mount / group / "cpu.cfs_period_us", f"{period}\n")
    return root


# --- cgroup v2 -----------------------------------------------------------------------------------


def test_without_a_quota_every_cpu_of_the_affinity_gets_a_worker(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path, {"app": "max 100000"})
    workers = default_workers(8, root, "0::/app\n")
    assert (workers.count, workers.describe()) == (8, "8 workers (CPU affinity allows 8)")


def test_a_cgroup_v2_quota_of_one_and_a_half_cpus_gives_two_workers(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path, {"kubepods/pod1": "150000 100000"})
    workers = default_workers(64, root, "0::/kubepods/pod1\n")
    assert workers.count == 2
    assert workers.reason == "cgroup CPU quota of 1.5 CPUs, rounded up to 2"


def test_a_quota_below_one_cpu_still_gives_one_worker(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path, {"pod": "10000 100000"})
    workers = default_workers(32, root, "0::/pod\n")
    assert workers.describe() == "1 worker (cgroup CPU quota of 0.1 CPUs, rounded up to 1)"


def test_a_parents_smaller_quota_limits_its_children(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path, {"pod": "200000 100000", "pod/container": "400000 100000"})
    assert cgroup_cpu_limit(root, "0::/pod/container\n") == 2.0


def test_in_a_cgroup_namespace_the_mount_itself_is_the_processs_cgroup(tmp_path: Path) -> None:
    # A container sees its own cgroup at the root; /proc/self/cgroup may still name the host's
    # path for it, which does not exist inside the container.
    root = cgroup_v2(tmp_path, {"": "300000 100000"})
    assert cgroup_cpu_limit(root, "0::/\n") == 3.0
    assert cgroup_cpu_limit(root, "0::/system.slice/docker-abc.scope\n") == 3.0


def test_an_affinity_narrower_than_the_quota_wins(tmp_path: Path) -> None:
    root = cgroup_v2(tmp_path, {"pod": "400000 100000"})
    assert default_workers(1, root, "0::/pod\n").describe() == "1 worker (CPU affinity allows 1)"


@pytest.mark.parametrize("value", ["", "garbage", "150000", "150000 0", "max"])
def test_an_unreadable_cpu_max_counts_as_no_quota(tmp_path: Path, value: str) -> None:
    root = cgroup_v2(tmp_path, {"pod": value})
    assert cgroup_cpu_limit(root, "0::/pod\n") is None


# --- cgroup v1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_a_cgroup_v1_cfs_quota_limits_the_workers(tmp_path: Path, mount: str) -> None:
    root = cgroup_v1(tmp_path, mount, {"docker/abc": (250000, 100000)})
    membership = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    workers = default_workers(16, root, membership)
    assert workers.describe() == "3 workers (cgroup CPU quota of 2.5 CPUs, rounded up to 3)"


def test_a_cgroup_v1_quota_of_minus_one_is_no_quota(tmp_path: Path) -> None:
    root = cgroup_v1(tmp_path, "cpu", {"": (-1, 100000)})
    assert cgroup_cpu_limit(root, "1:cpu:/\n") is None


def test_in_hybrid_mode_the_cpu_controller_is_read_from_cgroup_v1(tmp_path: Path) -> None:
    # systemd's hybrid layout: v1 controllers, plus a v2 tree without them at unified/.
    root = cgroup_v1(tmp_path, "cpu", {"": (100000, 100000)})
    write(root / "unified" / "cgroup.controllers", "")
    assert cgroup_cpu_limit(root, "1:cpu:/\n0::/\n") == 1.0


def test_without_any_cgroup_the_affinity_decides(tmp_path: Path) -> None:
    assert default_workers(3, tmp_path, "").describe() == "3 workers (CPU affinity allows 3)"
    assert default_workers(0, tmp_path, "").count == 1


# --- serve's default, for real -------------------------------------------------------------------


async def stderr_line(replica: ProxyProcess, starting: str) -> str:
    found: list[str] = []

    def logged() -> bool:
        found[:] = [
            line for line in replica.log_path.read_text().splitlines() if line.startswith(starting)
        ]
        return bool(found)

    await wait_until(logged, within_s=20)
    return found[0]


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset is not installed")
async def test_serve_pinned_to_one_cpu_runs_one_worker_and_says_why(
    tmp_path: Path, config: Config
) -> None:
    replica = await ProxyProcess.start(
        write_config(tmp_path / "proxy.yaml", config),
        workers=None,
        launcher=["taskset", "-c", str(min(os.sched_getaffinity(0)))],
    )
    try:
        expected = default_workers(1)  # This machine's cgroup quota may say less still.
        line = await stderr_line(replica, "pandadoc-proxy serving on")
        assert line.endswith(f" with {expected.describe()}")
        assert expected.count == 1
        assert child_pids(replica.process.pid) == []  # It serves in its own process.
    finally:
        assert await replica.stop() == 0


@pytest.mark.skipif(affinity_cpus() < 2, reason="needs two CPUs")
async def test_serve_on_two_cpus_starts_two_workers_and_says_why(
    tmp_path: Path, config: Config
) -> None:
    two = sorted(os.sched_getaffinity(0))[:2]
    expected = default_workers(2)
    if expected.count != 2:
        pytest.skip(f"this machine's cgroup quota allows fewer: {expected.describe()}")
    replica = await ProxyProcess.start(
        write_config(tmp_path / "proxy.yaml", config),
        workers=None,
        launcher=["taskset", "-c", ",".join(map(str, two))],
    )
    try:
        line = await stderr_line(replica, "pandadoc-proxy: ")
        assert line.startswith("pandadoc-proxy: 2 workers (CPU affinity allows 2) on http://")
        assert len(child_pids(replica.process.pid)) == 2
    finally:
        assert await replica.stop() == 0


async def test_workers_given_on_the_command_line_say_so(tmp_path: Path, config: Config) -> None:
    replica = await ProxyProcess.start(write_config(tmp_path / "proxy.yaml", config), workers=3)
    try:
        line = await stderr_line(replica, "pandadoc-proxy: ")
        assert line.startswith("pandadoc-proxy: 3 workers (--workers) on http://")
    finally:
        assert await replica.stop() == 0


# --- stopping, at any moment ---------------------------------------------------------------------


async def start_serve(config_path: Path, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "proxy", "serve", "--config", str(config_path)),
        *("--port", str(port), "--workers", "2"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )


async def exit_status(process: asyncio.subprocess.Process) -> tuple[int, str]:
    assert process.stderr is not None
    async with asyncio.timeout(60):
        stderr = await process.stderr.read()
        return await process.wait(), stderr.decode(errors="replace")


@pytest.mark.slow
async def test_sigterm_right_after_health_first_answers_always_exits_0(
    tmp_path: Path, config: Config
) -> None:
    """The issue's trial: about one start in three exited 1, when the second worker was
    still starting as the first answered health, and the forwarded SIGTERM killed it."""
    config_path = write_config(tmp_path / "proxy.yaml", config)
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(12):
            port = free_port()
            process = await start_serve(config_path, port)

            async def healthy(port: int = port) -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/_proxy/health") as got:
                        return got.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_until(healthy, within_s=30)
            process.send_signal(signal.SIGTERM)
            status, stderr = await exit_status(process)
            statuses.append(status)
            assert status == 0, stderr
    assert statuses == [0] * 12


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_while_the_workers_are_still_starting_exits_0(
    tmp_path: Path, config: Config, signum: int
) -> None:
    config_path = write_config(tmp_path / "proxy.yaml", config)
    process = await start_serve(config_path, free_port())
    assert process.stderr is not None
    # The supervisor's own line comes as it starts the workers, before any of them listens.
    async with asyncio.timeout(30):
        first = (await process.stderr.readline()).decode()
    assert first.startswith("pandadoc-proxy: 2 workers")
    process.send_signal(signum)
    status, stderr = await exit_status(process)
    assert status == 0, first + stderr
    assert "Traceback" not in stderr
