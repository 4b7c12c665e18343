"""The benchmark (``bench/run.py``) runs end to end in its smallest mode and reports sane numbers.

It starts its own upstream, redis-server and proxies, so this is a subprocess test of the
one command a user runs; the Python load generator is forced, so it does not depend on wrk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

ROW_LABELS = (
    "GET /small c=64  requests/s",
    "GET /small c=64  p50 ms",
    "GET /small c=64  p99 ms",
    "GET /small c=1   p50 ms",
    "GET /small c=1   added p50 ms",
    "GET /big 1 MiB  MB/s",
    "peak RSS MiB (VmHWM)",
    "Redis commands / request",
)


@pytest.mark.slow
def test_smoke_run_prints_every_row_with_nonzero_throughput_and_ratios(tmp_path: Path) -> None:
    report_path = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--smoke",
            "--loadgen",
            "python",
            "--json",
            str(report_path),
            "--max-seconds",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    table = done.stdout
    for label in ROW_LABELS:
        assert label in table, f"row {label!r} missing from:\n{table}"
    assert "targets:" in table
    assert "machine:" in table

    report = json.loads(report_path.read_text())
    results = report["results"]
    for target in ("direct", "baseline", "ours"):
        assert results[target]["small_c64_rps"] > 0, target
        assert results[target]["big_mb_per_s"] > 0, target
        assert 0 < results[target]["small_c1_p50_ms"] < 1000, target
        assert results[target]["errors"] == 0, target
    for proxy in ("baseline", "ours"):
        assert results[proxy]["peak_rss_mib"] > 10, proxy
    assert results["ours"]["redis_cmds_per_request"] is not None
    assert results["ours"]["redis_cmds_per_request"] < 1

    ratios = report["ratios"]["small_c64_rps"]
    assert ratios["ours/direct"] > 0
    assert ratios["ours/baseline"] > 0
    assert len(report["targets"]) == 4
    assert report["access_log_lines"] > 0
