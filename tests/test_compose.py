"""The production topology (docker-compose.yml + deploy/nginx.conf) stays coherent.

Runs the real ``docker-compose config``, which validates the file against the Compose
schema and interpolates the environment, then checks what docs/operations.md relies
on: one database, one Redis and one secret for every process, a one-shot migration
job, and an nginx proxy with sticky sessions and WebSocket upgrades for Socket.IO.
No Docker daemon is needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = Path("/usr/bin/docker-compose")
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
SERVICES = {"postgres", "redis", "migrate", "parley1", "parley2", "proxy", "janus", "coturn"}
SERVERS = ("parley1", "parley2")
SECRET = "test-secret-not-for-production"
MEDIA_SECRETS = {
    "PARLEY_JANUS_API_SECRET": "janus-api-secret-for-the-test",
    "PARLEY_JANUS_ADMIN_KEY": "janus-admin-key-for-the-test",
    "PARLEY_TURN_SECRET": "turn-secret-for-the-test",
}


def _clean_env() -> dict[str, str]:
    """The caller's environment without anything that could change the result."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PARLEY_", "COMPOSE_", "DOCKER_"))
    }


def _compose(args: list[str], env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    if not os.access(COMPOSE, os.X_OK):
        pytest.fail(
            f"{COMPOSE} is missing: install Debian's docker-compose package "
            "(apt-get install -y docker-compose) to run these tests"
        )
    # An explicit, empty env file: a developer's ./.env must not supply
    # PARLEY_SECRET_KEY or other values behind the test's back.
    env_file = workdir / "empty.env"
    env_file.write_text("")
    return subprocess.run(
        [str(COMPOSE), "--env-file", str(env_file), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _parse_yaml(text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]  # no stubs in the project venv
    except ImportError:
        # Not a project dependency. Debian's docker-compose runs on a Python that
        # always has PyYAML (python3-yaml is a hard dependency): use that one.
        interpreter = COMPOSE.read_text().splitlines()[0].removeprefix("#!").split()
        result = subprocess.run(
            [*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(result.stdout)
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = _clean_env() | {"PARLEY_SECRET_KEY": SECRET} | MEDIA_SECRETS
    result = _compose(["config"], env, tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    parsed = _parse_yaml(result.stdout)
    assert isinstance(parsed, dict)
    return parsed


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # "NAME=value" form
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def _block(text: str, opening: str) -> str:
    """The body of the ``opening { ... }`` block in an nginx configuration."""
    start = text.index(opening)
    depth = 0
    for index in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start : index + 1]
    raise AssertionError(f"unbalanced braces after {opening!r}")


def _nginx_conf() -> str:
    # Drop comments so that a commented-out directive does not count.
    return re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())


def test_services_exist(config: dict[str, Any]) -> None:
    assert SERVICES <= set(config["services"])


def test_all_parley_processes_share_database_redis_storage_and_secret(config: dict[str, Any]) -> None:
    services = config["services"]
    envs = {name: _environment(services[name]) for name in ("migrate", *SERVERS)}
    for key in ("PARLEY_DATABASE_URL", "PARLEY_REDIS_URL", "PARLEY_STORAGE_DIR", "PARLEY_SECRET_KEY"):
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (key, values)
    env = envs["parley1"]
    assert env["PARLEY_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["PARLEY_DATABASE_URL"]
    assert env["PARLEY_REDIS_URL"].startswith("redis://redis:6379")
    assert env["PARLEY_SECRET_KEY"] == SECRET
    for name in SERVERS:
        assert envs[name]["PARLEY_AUTO_MIGRATE"] == "false"
        volumes = [str(v) for v in services[name].get("volumes", [])]
        assert any(":" + env["PARLEY_STORAGE_DIR"] in v for v in volumes), volumes


def test_migrate_runs_once_before_the_servers(config: dict[str, Any]) -> None:
    services = config["services"]
    assert "parley db upgrade" in str(services["migrate"]["command"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVERS:
        service = services[name]
        assert "parley serve" in str(service["command"])
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "/healthz" in str(service["healthcheck"]["test"])


def test_proxy_publishes_8080_with_the_nginx_conf(config: dict[str, Any]) -> None:
    proxy = config["services"]["proxy"]
    published = set()
    for port in proxy.get("ports", []):
        if isinstance(port, dict):  # long syntax, as docker-compose config prints it
            published.add(str(port.get("published")))
        else:  # "8080:8080" short syntax
            published.add(str(port).split(":")[-2] if ":" in str(port) else str(port))
    assert "8080" in published, proxy.get("ports")
    volumes = [str(v) for v in proxy.get("volumes", [])]
    assert any(v.startswith(str(NGINX_CONF) + ":") and v.endswith(":ro") for v in volumes), volumes


def test_nginx_balances_both_processes_with_sticky_sessions() -> None:
    upstream = _block(_nginx_conf(), "upstream parley")
    assert re.search(r"^\s*(ip_hash|hash\s+\S+\s+consistent)\s*;", upstream, re.M), upstream
    for name in SERVERS:
        assert re.search(rf"^\s*server\s+{name}:8080\b", upstream, re.M), name


def test_nginx_proxies_socketio_websocket_upgrades() -> None:
    conf = _nginx_conf()
    location = _block(conf, "location /socket.io/")
    assert re.search(r"proxy_pass\s+http://parley\s*;", location)
    assert re.search(r"proxy_http_version\s+1\.1\s*;", location)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade\s*;", location)
    connection = re.search(r"proxy_set_header\s+Connection\s+(\S+)\s*;", location)
    assert connection, location
    if connection.group(1) != '"upgrade"':
        variable = connection.group(1).lstrip("$")
        assert re.search(rf"map\s+\$http_upgrade\s+\${variable}\s*{{", conf)
    timeout = re.search(r"proxy_read_timeout\s+(\d+)([smh]?)\s*;", location)
    assert timeout, "a long proxy_read_timeout is needed for idle WebSockets"
    seconds = int(timeout.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[timeout.group(2)]
    assert seconds >= 300


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_config_requires_the_secret_key(secret: str | None, tmp_path: Path) -> None:
    env = _clean_env() | MEDIA_SECRETS
    if secret is not None:
        env["PARLEY_SECRET_KEY"] = secret
    result = _compose(["config"], env, tmp_path)
    assert result.returncode != 0
    assert "PARLEY_SECRET_KEY" in result.stdout + result.stderr


def test_nginx_ends_tls_with_modern_protocols_and_hsts(config: dict[str, Any]) -> None:
    conf = _nginx_conf()
    server = _block(conf, "server {")
    assert re.search(r"^\s*listen\s+8080\s+ssl\s*;", server, re.M), "the published port speaks TLS"
    assert not re.search(r"^\s*listen\s+\d+\s*;", conf, re.M), "no plain-HTTP server that proxies"
    protocols = re.search(r"ssl_protocols\s+([^;]+);", server)
    assert protocols and set(protocols.group(1).split()) <= {"TLSv1.2", "TLSv1.3"}, protocols
    assert re.search(r"ssl_session_tickets\s+off\s*;", server)
    # Plain HTTP on the TLS port is redirected to HTTPS on the same host and port.
    assert re.search(r"error_page\s+497\s+=30[178]\s+https://\$http_host\$request_uri\s*;", server)
    hsts = re.search(r'add_header\s+Strict-Transport-Security\s+"max-age=(\d+)[^"]*"\s+always\s*;', server)
    assert hsts and int(hsts.group(1)) >= 31536000
    assert re.search(r"server_tokens\s+off\s*;", conf)
    # The certificate files are under a directory compose mounts read-only.
    paths = re.findall(r"ssl_certificate(?:_key)?\s+(\S+)\s*;", server)
    assert len(paths) == 2
    volumes = [str(v) for v in config["services"]["proxy"].get("volumes", [])]
    for path in paths:
        assert any(v.endswith(":ro") and path.startswith(v.split(":")[-2] + "/") for v in volumes), (path, volumes)
    # The processes are told their public URL is https (HSTS, Secure cookies, origins).
    env = _environment(config["services"]["parley1"])
    assert env["PARLEY_BASE_URL"].startswith("https://")
    assert env["PARLEY_ALLOWED_ORIGINS"].startswith("https://")


@pytest.mark.parametrize("name", sorted(MEDIA_SECRETS))
def test_config_requires_every_media_secret(name: str, tmp_path: Path) -> None:
    env = _clean_env() | {"PARLEY_SECRET_KEY": SECRET} | {k: v for k, v in MEDIA_SECRETS.items() if k != name}
    result = _compose(["config"], env, tmp_path)
    assert result.returncode != 0
    assert name in result.stdout + result.stderr


def test_parley_drives_janus_whose_api_is_not_published(config: dict[str, Any]) -> None:
    services = config["services"]
    janus = services["janus"]
    janus_env = _environment(janus)
    for name in SERVERS:
        env = _environment(services[name])
        assert env["PARLEY_MEDIA_ENGINE"] == "janus"
        assert env["PARLEY_JANUS_URL"] == "http://janus:8088/janus"
        assert env["PARLEY_JANUS_API_SECRET"] == janus_env["JANUS_API_SECRET"] == MEDIA_SECRETS["PARLEY_JANUS_API_SECRET"]
        assert env["PARLEY_JANUS_ADMIN_KEY"] == janus_env["JANUS_ADMIN_KEY"]
        servers = json.loads(env["PARLEY_ICE_SERVERS"])
        assert servers and all(url.startswith("turn:") for s in servers for url in s["urls"])
    published = json.dumps(janus.get("ports", []))
    assert "8088" not in published  # the API stays on the compose network
    assert "udp" in published  # media goes straight to browsers
    entrypoint = (ROOT / "deploy" / "janus" / "entrypoint.sh").read_text()
    assert 'api_secret = "$JANUS_API_SECRET"' in entrypoint and 'admin_key = "$JANUS_ADMIN_KEY"' in entrypoint


def test_coturn_uses_the_shared_secret_and_no_static_password(config: dict[str, Any]) -> None:
    coturn = config["services"]["coturn"]
    command = " ".join(coturn["command"]) if isinstance(coturn["command"], list) else coturn["command"]
    assert "--use-auth-secret" in command
    assert f"--static-auth-secret={MEDIA_SECRETS['PARLEY_TURN_SECRET']}" in command
    for name in SERVERS:
        assert _environment(config["services"][name])["PARLEY_TURN_SECRET"] == MEDIA_SECRETS["PARLEY_TURN_SECRET"]
    assert "--user" not in command and "lt-cred-mech" not in command
