"""Settings: one frozen object, read from environment variables.

Every variable is documented in docs/configuration.md. Relative paths are resolved
against the current directory, so the embedded state lives under ``./var``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    redis_url: str | None
    storage_dir: Path
    host: str
    port: int
    base_url: str
    allowed_origins: tuple[str, ...]
    secret_key: bytes = field(repr=False)
    auto_migrate: bool = True
    default_language: str = "en"
    invitation_days: int = 30
    cookie_secure: bool = False
    max_chat_chars: int = 2000
    # Invitation e-mail: sending is off while smtp_host is None (docs/calendars.md).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "Parley <parley@localhost>"
    smtp_security: str = "starttls"  # "starttls", "tls" (implicit) or "none"
    # Redis pub/sub channel shared by this deployment's processes (two deployments can
    # share one Redis under different channels).
    redis_channel: str = "parley"
    # A socket further behind than this is dropped; it reconnects and catches up.
    socket_max_buffer_bytes: int = 1024 * 1024
    socket_max_queued: int = 1000

    def with_bind(self, host: str, port: int) -> Settings:
        """Settings for a server bound to (host, port): base URL and origins follow
        the bind address unless they were configured explicitly."""
        base = _env("PARLEY_BASE_URL") or _url_for(host, port)
        origins = _origins(base)
        return replace(
            self, host=host, port=port, base_url=base.rstrip("/"), allowed_origins=origins
        )


def _url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _origins(base_url: str) -> tuple[str, ...]:
    raw = _env("PARLEY_ALLOWED_ORIGINS")
    if raw:
        origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    else:
        origins = (base_url.rstrip("/"),)
        # The same loopback server is reachable as localhost and 127.0.0.1.
        if "//127.0.0.1:" in base_url:
            origins += (base_url.replace("//127.0.0.1:", "//localhost:").rstrip("/"),)
    if "*" in origins:
        raise ValueError("PARLEY_ALLOWED_ORIGINS must list origins explicitly, not '*'.")
    return origins


def _secret_key(var_dir: Path) -> bytes:
    configured = _env("PARLEY_SECRET_KEY")
    if configured:
        return configured.encode()
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip().encode()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Created with owner-only permissions before the key is written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key.encode()


def load_settings() -> Settings:
    var_dir = Path(_env("PARLEY_VAR_DIR", "var") or "var").resolve()
    host = _env("PARLEY_HOST", DEFAULT_HOST) or DEFAULT_HOST
    port = int(_env("PARLEY_PORT", str(DEFAULT_PORT)) or DEFAULT_PORT)
    default_db = f"sqlite+aiosqlite:///{var_dir / 'parley.db'}"
    base = _env("PARLEY_BASE_URL") or _url_for(host, port)
    return Settings(
        var_dir=var_dir,
        database_url=_env("PARLEY_DATABASE_URL", default_db) or default_db,
        redis_url=_env("PARLEY_REDIS_URL"),
        storage_dir=Path(_env("PARLEY_STORAGE_DIR") or var_dir / "storage").resolve(),
        host=host,
        port=port,
        base_url=base.rstrip("/"),
        allowed_origins=_origins(base),
        secret_key=_secret_key(var_dir),
        auto_migrate=_bool("PARLEY_AUTO_MIGRATE", True),
        default_language=_env("PARLEY_LANGUAGE", "en") or "en",
        invitation_days=int(_env("PARLEY_INVITATION_DAYS", "30") or 30),
        cookie_secure=_bool("PARLEY_COOKIE_SECURE", base.startswith("https://")),
        smtp_host=_env("PARLEY_SMTP_HOST"),
        smtp_port=int(_env("PARLEY_SMTP_PORT", "587") or 587),
        smtp_username=_env("PARLEY_SMTP_USERNAME"),
        smtp_password=_env("PARLEY_SMTP_PASSWORD"),
        smtp_from=_env("PARLEY_SMTP_FROM", "Parley <parley@localhost>") or "Parley <parley@localhost>",
        smtp_security=_smtp_security(_env("PARLEY_SMTP_SECURITY", "starttls") or "starttls"),
        redis_channel=_env("PARLEY_REDIS_CHANNEL", "parley") or "parley",
        socket_max_buffer_bytes=int(_env("PARLEY_SOCKET_MAX_BUFFER_BYTES", str(1024 * 1024)) or 1024 * 1024),
        socket_max_queued=int(_env("PARLEY_SOCKET_MAX_QUEUED", "1000") or 1000),
    )


def _smtp_security(value: str) -> str:
    value = value.strip().lower()
    if value not in {"starttls", "tls", "none"}:
        raise ValueError("PARLEY_SMTP_SECURITY must be starttls, tls or none.")
    return value
