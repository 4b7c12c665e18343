"""A throwaway ``redis-server`` on a loopback port, keeping nothing on disk.

For the proxy's own tests, benchmarks and soak run, and for users' tests of what they build on
the proxy (as the emulator is): the one place that says how such a server is started.
``stop()`` then ``start()`` again gives a Redis that restarted without persistence: the same
address, empty; :meth:`ThrowawayRedis.pause_writes` and :meth:`ThrowawayRedis.freeze` are what
a failover and a frozen host look like from a client.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["ThrowawayRedis", "free_port", "redis_server_argv"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def redis_server_argv(
    port: int, workdir: Path, *, binary: str = "redis-server", logfile: str | None = None
) -> list[str]:
    """The command line of a server on ``HOST:port`` that saves nothing (no RDB, no AOF);
    ``logfile`` None logs to its standard output."""
    return [
        binary,
        *("--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"),
        *("--dir", str(workdir), "--logfile", logfile or ""),
    ]


class ThrowawayRedis:
    """``start()``, use ``url``, ``remove()``. Raises ``RuntimeError`` when redis-server is
    missing or does not come up."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; install it with `apt-get install redis-server` "
                "(Debian/Ubuntu) or `brew install redis` (macOS)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.workdir = Path(tempfile.mkdtemp(prefix="pandadoc-proxy-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            redis_server_argv(
                self.port, self.workdir, binary=self.binary, logfile=str(self.workdir / "log")
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + within_s
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # In case it was frozen.
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def pause_writes(self, seconds: float) -> None:
        """``CLIENT PAUSE ... WRITE``, what Redis's FAILOVER (and managed Redis maintenance)
        does: reads are answered, writes wait until the pause ends. Returns at once."""
        milliseconds = str(int(seconds * 1000)).encode()
        command = b"*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n"
        command += b"$%d\r\n%s\r\n$5\r\nWRITE\r\n" % (len(milliseconds), milliseconds)
        with socket.create_connection((HOST, self.port), timeout=5) as sock:
            sock.sendall(command)
            if not sock.recv(64).startswith(b"+OK"):
                raise RuntimeError("CLIENT PAUSE was refused")

    def freeze(self, seconds: float) -> None:
        """SIGSTOP for ``seconds``, then SIGCONT: a Redis that answers nothing at all (a VM
        pause, a host under memory pressure), with its connections still open."""
        assert self.process is not None, "start() it first"
        self.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self.process.send_signal(signal.SIGCONT)
