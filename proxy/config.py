"""Typed configuration, loaded from YAML (contract section 2).

The file is read into plain data, every string has its ``${VAR}`` / ``${VAR:-default}``
references replaced from the environment, and the result is checked against the dataclasses
below: unknown keys, wrong types and missing required values are errors that name the file
and the dotted key, so an operator can fix the file from one line on stderr.

The dataclasses are the single source of truth for keys, types and defaults: the loader walks
their fields, so adding an option is adding a field.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qs, urlsplit

import yaml

__all__ = [
    "AdminConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "LimitsConfig",
    "ListenConfig",
    "LoggingConfig",
    "OAuthConfig",
    "RedisConfig",
    "TokensConfig",
    "UpstreamConfig",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """A configuration problem, told as ``FILE: KEY: what is wrong`` on one line."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


# Value checks beyond the type, attached to fields as ``metadata={"check": ...}``. Each returns
# what is wrong, or None. ``"secret": True`` marks values never to be echoed anywhere.
# ``metadata={"parse": ...}`` turns the text of the file into a typed value once, here, and
# raises ValueError saying what is wrong (never echoing a secret).
def _port(value: int) -> str | None:
    return "must be a port number from 0 to 65535" if value > 65535 else None


def _positive(value: float) -> str | None:
    return "must be greater than zero" if value <= 0 else None


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None


def parse_fernet_keys(value: str | list[str]) -> tuple[str, ...]:
    """Fernet keys, comma-separated or as a list: each 32 url-safe base64-encoded bytes.

    A malformed one is named by its position, never its value."""
    parts = value.split(",") if isinstance(value, str) else value
    keys = []
    for position, part in enumerate(parts, start=1):
        key = str(part).strip()
        if not key:
            continue
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes; make one "
                'with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())")'
            )
        keys.append(key)
    return tuple(keys)


def _redis_url(value: str) -> str | None:
    # The URL may hold a password: say what is wrong, never echo it.
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "must be a redis://, rediss:// (TLS) or unix:// URL"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    return None


def parse_sentinels(value: str | list[Any]) -> tuple[tuple[str, int], ...]:
    """``"10.0.0.1:26379, sentinel-2:26379, [::1]:26379"`` (or a list of such entries, or of
    ``[host, port]`` pairs) as ``(host, port)`` pairs; empty: not a Sentinel deployment.

    Raises ValueError saying which entry is wrong (sentinel addresses are not secret).
    """
    entries = value.split(",") if isinstance(value, str) else value
    addresses = []
    for part in entries:
        if isinstance(part, list | tuple) and len(part) == 2:
            part = f"{part[0]}:{part[1]}"  # The parsed form, written back as YAML.
        entry = str(part).strip()
        if not entry:
            continue
        if "@" in entry or "/" in entry:
            # Perhaps a URL with a password in it: not echoed.
            raise ValueError(
                "must be a comma-separated list of host:port: an entry is not plain host:port "
                "(a password goes in sentinel_password)"
            )
        host, sep, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"must be a comma-separated list of host:port: {entry!r} is not host:port "
                "(a port from 1 to 65535)"
            )
        addresses.append((host, int(port)))
    if not addresses and (value.strip(", ") if isinstance(value, str) else value):
        raise ValueError(
            "must be a comma-separated list of host:port: names no sentinel "
            "(expected host:port, host:port, ...)"
        )
    return tuple(addresses)


URL = {"check": _http_url}
POSITIVE = {"check": _positive}


@dataclass(frozen=True, slots=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"check": _port})
    #: On SIGTERM, how long requests in flight may take to finish before they are cut off.
    drain_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    base_url: str = field(default="https://api.pandadoc.com", metadata=URL)
    #: Seconds from sending a request to PandaDoc's response headers.
    timeout_s: float = field(default=60.0, metadata=POSITIVE)
    #: Seconds to open a TCP (and TLS) connection to PandaDoc.
    connect_timeout_s: float = field(default=10.0, metadata=POSITIVE)
    #: Pooled keep-alive connections to PandaDoc, per process.
    max_connections: int = field(default=100, metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    # Required in OAuth mode (the default); see _check_credentials. No default value either way.
    client_id: str = ""
    client_secret: str = field(default="", repr=False, metadata={"secret": True})
    authorize_url: str = field(default="https://app.pandadoc.com/oauth2/authorize", metadata=URL)
    token_url: str = field(default="https://api.pandadoc.com/oauth2/access_token", metadata=URL)
    redirect_uri: str = field(default="http://localhost:8080/_proxy/oauth/callback", metadata=URL)
    scope: str = "read+write"
    #: Seconds to wait for the token endpoint's answer.
    token_timeout_s: float = field(default=20.0, metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    #: ``oauth``: bearer tokens from the authorization-code flow, refreshed by the proxy.
    #: ``api_key``: PandaDoc's legacy ``Authorization: API-Key <key>``; no OAuth, no refresh.
    mode: Literal["oauth", "api_key"] = "oauth"
    api_key: str = field(default="", repr=False, metadata={"secret": True})


@dataclass(frozen=True, slots=True)
class RedisConfig:
    #: May hold a password (``redis://:pw@host``), so it is kept out of reprs too.
    #: ``rediss://`` for TLS (options such as ``?ssl_ca_certs=/path/ca.pem`` in the query).
    #: With ``sentinels``, only its credentials, database and scheme are used; with
    #: ``cluster``, it names one node of the cluster, from which the others are discovered.
    url: str = field(
        default="redis://127.0.0.1:6379/0",
        repr=False,
        metadata={"secret": True, "check": _redis_url},
    )
    key_prefix: str = "pandadoc-proxy"
    #: Redis Sentinel: comma-separated ``host:port`` of the sentinels (or a YAML list), which
    #: say where the master is (and where it moved after a failover). Empty: no Sentinel.
    sentinels: tuple[tuple[str, int], ...] = field(default=(), metadata={"parse": parse_sentinels})
    #: The master's name as the sentinels know it (``sentinel monitor NAME ...``).
    sentinel_master: str = ""
    #: The sentinels' own password (their ``requirepass``), if they have one; the master's
    #: password goes in ``url``.
    sentinel_password: str = field(default="", repr=False, metadata={"secret": True})
    #: Redis Cluster: ``url`` names one node; the client discovers the others and follows
    #: slot moves. Every key of one ``key_prefix`` lives in one slot (a ``{key_prefix}`` tag).
    cluster: bool = False
    #: Seconds a process trusts its in-memory copy of the token before re-reading Redis, as a
    #: fallback: every write of the pair also publishes a notice that every replica hears at
    #: once. While that subscription is down, the copy is trusted for at most one second.
    token_cache_s: float = 5.0
    socket_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class TokensConfig:
    refresh_margin_s: float = 300.0
    lock_ttl_s: float = field(default=60.0, metadata=POSITIVE)
    #: Calls to the token endpoint per refresh when it answers 5xx or times out.
    refresh_attempts: int = field(default=3, metadata=POSITIVE)
    #: Wait before the second attempt; doubled for each further one.
    refresh_backoff_s: float = 0.5
    #: After a refresh failed, requests get 503 refresh_failed for this long without calling
    #: the token endpoint again, so an outage at PandaDoc is not met with a stampede.
    failed_refresh_cooldown_s: float = 5.0
    #: At most this many successful refreshes per minute, fleet-wide, whatever the token
    #: endpoint claims about lifetimes; beyond it renewals are refused (503 refresh_failed
    #: with Retry-After) and the pair in hand is used. 0: no ceiling.
    max_refreshes_per_minute: int = 6
    #: How long a request waits for a renewal of the token (its own replica's refresh, or
    #: another replica's, or a token store that does not answer) before it gets 503; the
    #: renewal itself goes on in the background.
    renewal_wait_s: float = field(default=30.0, metadata=POSITIVE)
    #: Also treat a 403 whose JSON body has "type": "authentication_error" as a rejected
    #: token (PandaDoc documents that answer for an invalid token).
    refresh_on_403_authentication_error: bool = True
    #: Comma-separated Fernet keys: when set, the tokens are stored encrypted. The first key
    #: encrypts, all of them decrypt (add a new key in front to rotate). See tokens/cipher.py.
    encryption_keys: tuple[str, ...] = field(
        default=(), repr=False, metadata={"secret": True, "parse": parse_fernet_keys}
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_body_bytes: int = 64 * 1024 * 1024
    #: Request bodies up to this size are kept in memory; larger ones go to a temporary file.
    memory_body_bytes: int = 1024 * 1024
    #: A connection that has not sent a complete request head this long after it opened (or
    #: after its last answer) is closed: slow-header clients (slowloris) and idle keep-alive
    #: connections cannot hold sockets forever.
    header_timeout_s: float = field(default=15.0, metadata=POSITIVE)
    #: A client that sends nothing of its request body for this long gets 408 and is cut off
    #: (a slow or stuck sender must not hold a connection and a handler forever).
    body_timeout_s: float = field(default=30.0, metadata=POSITIVE)
    #: Requests forwarded at once by one process; more get 503 ``overloaded`` with
    #: ``Retry-After`` at once instead of queueing without bound. 0: no cap. The proxy's own
    #: routes (health, ready, metrics) are never capped.
    max_concurrent_requests: int = 0
    #: Client connections open at once, per process; one more gets 503 ``overloaded`` and is
    #: closed before anything is read. 0: no cap.
    max_connections: int = 0


@dataclass(frozen=True, slots=True)
class AdminConfig:
    username: str = "admin"
    password: str = field(default="", repr=False, metadata={"secret": True})


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``json`` lines for production, ``text`` for a terminal.
    format: Literal["json", "text"] = "json"
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the YAML file at ``path``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "the file is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ConfigError(source, "", f"invalid YAML{where}: {problem}") from None
    return parse_config(data, source=source, environ=environ)


def parse_config(
    data: Any, *, source: str = "<config>", environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML data (a mapping) into a :class:`Config`."""
    if data is None:
        data = {}
    env = os.environ if environ is None else environ
    config: Config = _build(Config, data, key="", source=source, env=env)
    _check_credentials(config, data, source)
    _check_redis_deployment(config.redis, source)
    return config


def _check_redis_deployment(redis: RedisConfig, source: str) -> None:
    """One server, Sentinel or Cluster: the keys of the chosen kind, and only those."""
    if redis.sentinels and not redis.sentinel_master.strip():
        raise ConfigError(
            source, "redis.sentinel_master", "is required when redis.sentinels is set"
        )
    if redis.sentinel_master and not redis.sentinels:
        raise ConfigError(
            source, "redis.sentinels", "is required when redis.sentinel_master is set"
        )
    if redis.sentinel_password and not redis.sentinels:
        raise ConfigError(
            source, "redis.sentinel_password", "is only used together with redis.sentinels"
        )
    if redis.cluster and redis.sentinels:
        raise ConfigError(
            source,
            "redis.cluster",
            "cannot be combined with redis.sentinels (a deployment is Sentinel or Cluster)",
        )
    if not (redis.cluster or redis.sentinels):
        return
    parts = urlsplit(redis.url)
    if parts.scheme == "unix":
        kind = "redis.cluster" if redis.cluster else "redis.sentinels"
        raise ConfigError(source, "redis.url", f"must be redis:// or rediss:// with {kind}")
    if redis.cluster and _url_database(parts) != 0:
        raise ConfigError(
            source, "redis.url", "must name database 0 with redis.cluster (a cluster has no other)"
        )


def _url_database(parts: SplitResult) -> int:
    """The database a redis:// URL selects, read as redis-py does (``?db=`` wins over the path)."""
    given = parse_qs(parts.query).get("db", [parts.path.strip("/")])[0]
    try:
        return int(given or "0")
    except ValueError:
        return 0


def _check_credentials(config: Config, data: dict[str, Any], source: str) -> None:
    """The credentials the chosen ``auth.mode`` needs, and only those, must be given."""
    if config.auth.mode == "api_key":
        if not config.auth.api_key.strip():
            raise ConfigError(source, "auth.api_key", "is required when auth.mode is api_key")
        return
    given = data.get("oauth") or {}
    for name in ("client_id", "client_secret"):
        if name not in given:
            raise ConfigError(source, f"oauth.{name}", "is required")
        if not str(getattr(config.oauth, name)).strip():
            raise ConfigError(source, f"oauth.{name}", "must not be empty")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: str, *, key: str, source: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(source, key, f"environment variable {name} is not set")

    return _VAR.sub(replace, value)


def _build(cls: type[Any], data: Any, *, key: str, source: str, env: Mapping[str, str]) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(source, key or "(top level)", "must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            dotted = _join(key, str(name))
            known = ", ".join(sorted(fields))
            raise ConfigError(source, dotted, f"unknown key (known keys here: {known})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        dotted = _join(key, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(source, dotted, "is required")
            continue
        parse = f.metadata.get("parse")
        if parse is not None:
            value = _parsed(parse, data[name], key=dotted, source=source, env=env)
        else:
            value = _convert(hints[name], data[name], key=dotted, source=source, env=env)
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(source, dotted, problem)
        values[name] = value
    return cls(**values)


def _parsed(
    parse: Callable[[Any], Any], value: Any, *, key: str, source: str, env: Mapping[str, str]
) -> Any:
    """A value written as text (or a list of texts) and parsed into its typed form."""
    if isinstance(value, list | tuple):
        value = [
            _interpolate(item, key=key, source=source, env=env) if isinstance(item, str) else item
            for item in value
        ]
    elif isinstance(value, str):
        value = _interpolate(value, key=key, source=source, env=env)
    else:
        raise ConfigError(source, key, f"must be a string or a list, got {_kind(value)}")
    try:
        return parse(value)
    except ValueError as exc:
        raise ConfigError(source, key, str(exc)) from None


def secret_values(config: Config) -> tuple[str, ...]:
    """Every configured value that must never be logged: the fields marked secret, and the
    passwords in URLs."""
    found: list[str] = []

    def walk(section: Any) -> None:
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if dataclasses.is_dataclass(value):
                walk(value)
            elif f.metadata.get("secret"):
                found.extend(value if isinstance(value, tuple) else [value])

    walk(config)
    found.append(urlsplit(config.redis.url).password or "")
    return tuple(value for value in found if value)


def _convert(hint: Any, value: Any, *, key: str, source: str, env: Mapping[str, str]) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, key=key, source=source, env=env)
    if isinstance(value, str):
        value = _interpolate(value, key=key, source=source, env=env)
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(source, key, f"must be one of {choices}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {hint!r}")  # pragma: no cover - dev error
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(source, key, f"must be a string, got {_kind(value)}")
        return str(value)
    if hint is bool:
        if isinstance(value, str) and value.lower() in _BOOLEAN_WORDS:
            return _BOOLEAN_WORDS[value.lower()]
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"must be true or false, got {_kind(value)}")
        return value
    if hint is int:
        number = _number(value, int, key=key, source=source)
        if number < 0:
            raise ConfigError(source, key, "must not be negative")
        return number
    if hint is float:
        number = _number(value, float, key=key, source=source)
        if number < 0:
            raise ConfigError(source, key, "must not be negative")
        return number
    raise TypeError(f"unsupported config type {hint!r}")  # pragma: no cover - dev error


_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _number(value: Any, kind: type[int] | type[float], *, key: str, source: str) -> Any:
    """Accept YAML numbers, and strings that read as numbers (they come from ``${VAR}``)."""
    name = "a whole number" if kind is int else "a number"
    if isinstance(value, bool):
        raise ConfigError(source, key, f"must be {name}, got {_kind(value)}")
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            raise ConfigError(source, key, f"must be {name}, got {value!r}") from None
    if kind is int and isinstance(value, int):
        return value
    if kind is float and isinstance(value, int | float):
        return float(value)
    raise ConfigError(source, key, f"must be {name}, got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "true/false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
