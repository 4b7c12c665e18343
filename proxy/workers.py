"""``serve --workers N``: N replicas in N processes, sharing one port through SO_REUSEPORT.

Each worker is a complete replica (its own event loop, client pool, token cache and replica
id), exactly as if it ran on another machine: they coordinate only through Redis. The kernel
spreads new connections over the workers' listening sockets.

This process supervises them: it checks that the port can be had (so "port in use" is one line
and exit status 1, not N), starts the workers with ``serve --workers 1 --reuse-port``, passes
SIGTERM/SIGINT on, and exits 0 once every worker has exited 0. A worker that dies on its own
takes the others down with it (exit status 1), so that the process manager above (systemd,
Kubernetes) restarts a whole, known-good set rather than a silently shrunken one.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["check_port_free", "supervise"]


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


def supervise(worker_args: Sequence[str], count: int, grace_s: float) -> int:
    """Run ``count`` workers (``python -m proxy <worker_args>``) until a signal, then stop
    them, giving each ``grace_s`` seconds to drain. Returns the exit status."""
    workers = [
        subprocess.Popen([sys.executable, "-m", "proxy", *worker_args]) for _ in range(count)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping and all(worker.poll() is None for worker in workers):
            time.sleep(0.2)
        if not stopping:  # A worker died on its own: stop the rest.
            print("pandadoc-proxy: a worker exited; stopping the others", file=sys.stderr)
            stop(signal.SIGTERM, None)
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
    return 0 if all(worker.returncode == 0 for worker in workers) and stopping else 1
