"""Throwaway Redis deployments for the tests: Sentinel (a master, a replica, three sentinels),
Cluster (three masters) and a TLS server.

Every process is a real ``redis-server`` on a free loopback port (never 6379), with nothing
kept on disk after the test: each topology is a context manager that kills its processes and
removes its directory on the way out, however the test ended. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from conftest import free_port

MASTER_NAME = "pandadoc"


def wait_for(condition: Callable[[], bool], what: str, *, within_s: float = 15.0) -> None:
    """Poll ``condition`` (which may raise redis errors while things start) until it holds."""
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within_s} s")
        time.sleep(0.05)


@dataclass
class RedisProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True
        )

    def ping(self) -> bool:
        with self.client() as client:
            return bool(client.ping())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@dataclass
class Processes:
    """The processes of one topology and its directory; all gone after ``close``."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pp-redis-")))
    started: list[RedisProcess] = field(default_factory=list)

    def start(self, *args: str, port: int | None = None, config: str = "") -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        port = port or free_port()
        log = self.workdir / f"redis-{port}.log"
        command = [binary]
        if config:  # sentinels rewrite their configuration file, so they need one
            path = self.workdir / f"sentinel-{port}.conf"
            path.write_text(config)
            command.append(str(path))
        command += [
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(log),
            *args,
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node = RedisProcess(process, port, log)
        self.started.append(node)
        wait_for(node.ping, f"redis-server on port {port} (see {log})", within_s=10)
        return node

    def close(self) -> None:
        for node in self.started:
            with contextlib.suppress(Exception):
                node.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


_NO_DISK = ("--save", "", "--appendonly", "no")


@dataclass
class SentinelDeployment:
    master: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess]

    @property
    def sentinels_setting(self) -> str:
        """The value of ``redis.sentinels`` for this deployment."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port(self) -> int:
        """The master's port as the (first answering) sentinel says."""
        for sentinel in self.sentinels:
            if sentinel.process.poll() is None:
                with sentinel.client() as client:
                    _, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                    return int(port)
        raise RuntimeError("no sentinel answers")


@contextlib.contextmanager
def sentinel_deployment(*, down_after_ms: int = 1000) -> Iterator[SentinelDeployment]:
    """A master, one replica and three sentinels (quorum 2) watching them."""
    processes = Processes()
    try:
        master = processes.start(*_NO_DISK)
        replica = processes.start(*_NO_DISK, "--replicaof", "127.0.0.1", str(master.port))

        def linked() -> bool:
            with replica.client() as client:
                return bool(client.info("replication")["master_link_status"] == "up")

        wait_for(linked, "the replica's link to the master")
        config = (
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        sentinels = [processes.start("--sentinel", config=config) for _ in range(3)]

        def all_see_each_other() -> bool:
            for sentinel in sentinels:
                with sentinel.client() as client:
                    state = client.sentinel_master(MASTER_NAME)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
            return True

        # Sentinels find each other through the master's hello channel, every 2 s.
        wait_for(all_see_each_other, "three sentinels that know each other", within_s=20)
        yield SentinelDeployment(master, replica, sentinels)
    finally:
        processes.close()


@dataclass
class ClusterDeployment:
    nodes: list[RedisProcess]

    @property
    def url(self) -> str:
        """``redis.url`` for this cluster: one node, from which the client finds the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"


@contextlib.contextmanager
def cluster_deployment(masters: int = 3) -> Iterator[ClusterDeployment]:
    """``masters`` primaries, no replicas, every slot covered."""
    processes = Processes()
    try:
        nodes = []
        for index in range(masters):
            nodes.append(
                processes.start(
                    *_NO_DISK,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(processes.workdir / f"nodes-{index}.conf"),
                    # The bus port defaults to port + 10000, which may be taken (or too high).
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-node-timeout",
                    "2000",
                )
            )
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )

        def all_ok() -> bool:
            for node in nodes:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    if "cluster_state:ok" not in info or "cluster_known_nodes:3" not in info:
                        return False
            return True

        wait_for(all_ok, "cluster_state:ok on every node")
        yield ClusterDeployment(nodes)
    finally:
        processes.close()


@dataclass
class TlsServer:
    node: RedisProcess
    ca_file: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.node.port}/0?ssl_ca_certs={self.ca_file}"


@contextlib.contextmanager
def tls_server() -> Iterator[TlsServer]:
    """A redis-server that speaks only TLS, with a self-signed certificate for 127.0.0.1."""
    processes = Processes()
    try:
        cert, key = processes.workdir / "cert.pem", processes.workdir / "key.pem"
        subprocess.run(
            [
                shutil.which("openssl") or "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        port = free_port()
        binary = shutil.which("redis-server") or "redis-server"
        log = processes.workdir / "redis-tls.log"
        process = subprocess.Popen(
            [
                *(binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
                *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
                *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
                *("--dir", str(processes.workdir), "--logfile", str(log), *_NO_DISK),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        node = RedisProcess(process, port, log)
        processes.started.append(node)

        def answers() -> bool:
            with redis.Redis(
                host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert)
            ) as client:
                return bool(client.ping())

        wait_for(answers, f"TLS redis-server on port {port}", within_s=10)
        yield TlsServer(node, cert)
    finally:
        processes.close()
