"""Contract section 2: the YAML file, its interpolation and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent
MINIMAL = {"oauth": {"client_id": "id", "client_secret": "secret"}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    return path


def test_only_the_client_credentials_are_required_and_the_rest_has_contract_defaults() -> None:
    config = parse_config(MINIMAL)
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8080)
    assert config.upstream.base_url == "https://api.pandadoc.com"
    assert config.upstream.timeout_s == 60
    assert config.oauth.authorize_url == "https://app.pandadoc.com/oauth2/authorize"
    assert config.oauth.token_url == "https://api.pandadoc.com/oauth2/access_token"
    assert config.oauth.redirect_uri == "http://localhost:8080/_proxy/oauth/callback"
    assert config.oauth.scope == "read+write"
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.redis.key_prefix == "pandadoc-proxy"
    assert config.tokens.refresh_margin_s == 300
    assert config.tokens.lock_ttl_s == 60
    assert config.limits.max_body_bytes == 67108864
    assert (config.admin.username, config.admin.password) == ("admin", "")


def test_environment_variables_are_interpolated_anywhere_in_a_string(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "oauth:\n  client_id: pre-${ID}-post\n  client_secret: ${SECRET}\n"
        "upstream:\n  base_url: http://${HOST}:9000\n",
    )
    config = load_config(path, environ={"ID": "abc", "SECRET": "s3", "HOST": "emu"})
    assert config.oauth.client_id == "pre-abc-post"
    assert config.oauth.client_secret == "s3"
    assert config.upstream.base_url == "http://emu:9000"


def test_a_default_applies_only_when_the_variable_is_unset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "oauth:\n  client_id: ${ID:-fallback}\n  client_secret: ${S:-x}\n"
        "admin:\n  password: ${PW:-}\n",
    )
    assert load_config(path, environ={}).oauth.client_id == "fallback"
    assert load_config(path, environ={"ID": "set"}).oauth.client_id == "set"
    assert load_config(path, environ={}).admin.password == ""


def test_interpolated_numbers_are_converted_to_the_keys_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "oauth: {client_id: a, client_secret: b}\nlisten:\n  port: ${PORT:-9090}\n"
        "upstream:\n  timeout_s: ${T}\n",
    )
    config = load_config(path, environ={"T": "2.5"})
    assert config.listen.port == 9090
    assert config.upstream.timeout_s == 2.5


def test_an_unset_variable_without_default_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "oauth:\n  client_id: a\n  client_secret: ${PANDADOC_CLIENT_SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert str(path) in message
    assert "oauth.client_secret" in message
    assert "PANDADOC_CLIENT_SECRET" in message


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("oauth: {client_id: a, client_secret: b}\nlisten: {prot: 1}\n", "listen.prot", "unknown"),
        ("oauth: {client_id: a, client_secret: b}\nlistne: {port: 1}\n", "listne", "unknown"),
        ("oauth: {client_id: a}\n", "oauth.client_secret", "required"),
        ("listen: {port: 1}\n", "oauth.client_id", "required"),
        (
            "oauth: {client_id: a, client_secret: b}\nauth: {mode: api_key}\n",
            "auth.api_key",
            "required",
        ),
        ("oauth: {client_id: a, client_secret: b}\nauth: {mode: basic}\n", "auth.mode", "one of"),
        ("oauth: {client_id: a, client_secret: b}\nlisten: {port: abc}\n", "listen.port", "number"),
        ("oauth: {client_id: a, client_secret: b}\nlisten: {port: 70000}\n", "listen.port", "port"),
        (
            "oauth: {client_id: a, client_secret: b}\nlisten: {port: true}\n",
            "listen.port",
            "number",
        ),
        (
            "oauth: {client_id: a, client_secret: b}\nupstream: {timeout_s: -1}\n",
            "upstream.timeout_s",
            "negative",
        ),
        (
            "oauth: {client_id: a, client_secret: b}\nupstream: {timeout_s: 0}\n",
            "upstream.timeout_s",
            "greater than zero",
        ),
        (
            "oauth: {client_id: a, client_secret: b}\nupstream: {base_url: 'api.pandadoc.com'}\n",
            "upstream.base_url",
            "http",
        ),
        ("oauth: {client_id: a, client_secret: b}\nlisten: [1, 2]\n", "listen", "mapping"),
        ("oauth: {client_id: a, client_secret: [b]}\n", "oauth.client_secret", "string"),
        ("oauth: {client_id: '', client_secret: b}\n", "oauth.client_id", "empty"),
        (
            "oauth: {client_id: a, client_secret: b}\nlogging: {format: xml}\n",
            "logging.format",
            "one of",
        ),
    ],
)
def test_a_bad_value_is_an_error_naming_the_file_and_the_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_api_key_mode_needs_no_oauth_credentials() -> None:
    config = parse_config({"auth": {"mode": "api_key", "api_key": "sandbox-key"}})
    assert config.auth.mode == "api_key"
    assert config.auth.api_key == "sandbox-key"
    assert "sandbox-key" not in repr(config)


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_invalid_yaml_is_a_configuration_error_with_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "oauth:\n  client_id: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(path)


def test_a_configuration_error_never_shows_the_secret(tmp_path: Path) -> None:
    path = write(tmp_path, "oauth:\n  client_id: a\n  client_secret: hunter2-secret\n  nope: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "hunter2-secret" not in str(caught.value)


def test_secrets_are_kept_out_of_the_configs_repr() -> None:
    config = parse_config(
        {
            "oauth": {"client_id": "id", "client_secret": "hunter2-secret"},
            "admin": {"password": "admin-pw-secret"},
            "redis": {"url": "redis://:redis-pw-secret@host:6379/0"},
        }
    )
    text = repr(config)
    for secret in ("hunter2-secret", "admin-pw-secret", "redis-pw-secret"):
        assert secret not in text


def test_the_example_configuration_is_valid() -> None:
    config = load_config(
        REPO / "config" / "proxy.example.yaml",
        environ={"PANDADOC_CLIENT_ID": "id", "PANDADOC_CLIENT_SECRET": "secret"},
    )
    assert config.oauth.client_id == "id"
    assert config.listen.port == 8080
