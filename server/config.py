"""Settings: one frozen object, read from environment variables.

Every variable is documented in docs/configuration.md. Relative paths are resolved
against the current directory, so the embedded state lives under ``./var``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

DEFAULT_HOST = "127.0.0.1"
MEDIA_ENGINES = ("embedded", "janus")
ICE_SCHEMES = ("stun:", "turn:", "turns:")
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
    # Chat per participant: sustained messages a second, and the burst allowed above it.
    chat_rate: float = 1.0
    chat_burst: int = 10
    # Invitation e-mail: sending is off while smtp_host is None (docs/calendars.md).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "Parley <parley@localhost>"
    smtp_security: str = "starttls"  # "starttls", "tls" (implicit) or "none"
    # Due work and presence leases (docs/operations.md, "Presence after a crash").
    due_work_poll_seconds: float = 1.0
    presence_lease_seconds: float = 25.0
    presence_renew_seconds: float = 10.0
    # Where each audit chain's latest head goes after a commit: "file" (var/audit_heads.json,
    # the embedded setup) or "log" (logger parley.audit.head, for the operator's log stream).
    audit_heads: str = "file"
    # A signed checkpoint every this many entries of a chain.
    audit_checkpoint_every: int = 100
    # The Ed25519 signing key; None means var_dir/signing_key.pem.
    signing_key_file: Path | None = None
    # Password-login throttle (docs/security.md): failures allowed per account and per
    # address before delays start, the first delay, its cap, and how long a key is
    # remembered (also: at most one audited failure per key per window).
    login_throttle_account_after: int = 5
    login_throttle_address_after: int = 20
    login_throttle_base_seconds: float = 1.0
    login_throttle_max_seconds: float = 900.0
    login_throttle_window_seconds: float = 86400.0
    # Proxies whose X-Forwarded-For is believed (addresses or networks); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # Redis pub/sub channel shared by this deployment's processes (two deployments can
    # share one Redis under different channels).
    redis_channel: str = "parley"
    # A socket further behind than this is dropped; it reconnects and catches up.
    socket_max_buffer_bytes: int = 1024 * 1024
    socket_max_queued: int = 1000
    # Audio and interpretation (docs/configuration.md, "Media"): the engine ("embedded"
    # or "janus"), Janus's HTTP API and secret, the browsers' ICE servers, and the
    # shared secret for short-lived TURN credentials (coturn's use-auth-secret).
    media_engine: str = "embedded"
    janus_url: str | None = None
    janus_api_secret: str | None = field(default=None, repr=False)
    # The VideoRoom plugin's admin_key: only a holder creates rooms.
    janus_admin_key: str | None = field(default=None, repr=False)
    ice_servers: tuple[IceServer, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    # Evidence ciphertext (docs/evidence.md): where it is stored (None: var_dir/evidence)
    # and the largest ciphertext one document version may have (4 GiB).
    evidence_root: Path | None = None
    evidence_max_bytes: int = 4 * 1024**3

    @property
    def evidence_dir(self) -> Path:
        return self.evidence_root or self.var_dir / "evidence"

    def with_bind(self, host: str, port: int) -> Settings:
        """Settings for a server bound to (host, port): base URL and origins follow
        the bind address unless they were configured explicitly."""
        base = _env("PARLEY_BASE_URL") or _url_for(host, port)
        origins = _origins(base)
        return replace(
            self, host=host, port=port, base_url=base.rstrip("/"), allowed_origins=origins
        )


def _url_for(host: str, port: int) -> str:
    # Compares with the wildcard address to show a reachable one instead; binds nothing.
    shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # noqa: S104
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


def private_dir(path: Path) -> None:
    """Create ``path`` (owner-only), or take group and other access away from an
    existing one: var/ and the storage hold chat, names and e-mail addresses."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_file(path, 0o700)


def private_file(path: Path, mode: int = 0o600) -> None:
    """Owner-only ``mode`` for an existing file or directory of ours; one owned by
    someone else (a deployment's choice) is left alone."""
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(mode)
    except FileNotFoundError:
        pass


def _secret_key(var_dir: Path) -> bytes:
    configured = _env("PARLEY_SECRET_KEY")
    if configured:
        return configured.encode()
    path = var_dir / "secret_key"
    if path.exists():
        private_file(path)
        return path.read_text().strip().encode()
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
    lease_seconds, renew_seconds = _lease_times()
    media = _media_settings()
    storage_dir = Path(_env("PARLEY_STORAGE_DIR") or var_dir / "storage").resolve()
    evidence_dir = Path(_env("PARLEY_EVIDENCE_DIR") or var_dir / "evidence").resolve()
    private_dir(var_dir)
    private_dir(storage_dir)
    private_dir(evidence_dir)
    return Settings(
        var_dir=var_dir,
        database_url=_env("PARLEY_DATABASE_URL", default_db) or default_db,
        redis_url=_env("PARLEY_REDIS_URL"),
        storage_dir=storage_dir,
        host=host,
        port=port,
        base_url=base.rstrip("/"),
        allowed_origins=_origins(base),
        secret_key=_secret_key(var_dir),
        auto_migrate=_bool("PARLEY_AUTO_MIGRATE", True),
        default_language=_env("PARLEY_LANGUAGE", "en") or "en",
        invitation_days=int(_env("PARLEY_INVITATION_DAYS", "30") or 30),
        chat_rate=_positive("PARLEY_CHAT_RATE", 1.0),
        chat_burst=_positive_int("PARLEY_CHAT_BURST", 10),
        cookie_secure=_bool("PARLEY_COOKIE_SECURE", base.startswith("https://")),
        smtp_host=_env("PARLEY_SMTP_HOST"),
        smtp_port=int(_env("PARLEY_SMTP_PORT", "587") or 587),
        smtp_username=_env("PARLEY_SMTP_USERNAME"),
        smtp_password=_env("PARLEY_SMTP_PASSWORD"),
        smtp_from=_env("PARLEY_SMTP_FROM", "Parley <parley@localhost>") or "Parley <parley@localhost>",
        smtp_security=_smtp_security(_env("PARLEY_SMTP_SECURITY", "starttls") or "starttls"),
        due_work_poll_seconds=_positive("PARLEY_DUE_WORK_POLL_SECONDS", 1.0),
        presence_lease_seconds=lease_seconds,
        presence_renew_seconds=renew_seconds,
        audit_heads=_audit_heads(_env("PARLEY_AUDIT_HEADS", "file") or "file"),
        audit_checkpoint_every=_positive_int("PARLEY_AUDIT_CHECKPOINT_EVERY", 100),
        signing_key_file=_path(_env("PARLEY_SIGNING_KEY_FILE")),
        login_throttle_account_after=int(_env("PARLEY_LOGIN_THROTTLE_ACCOUNT_AFTER", "5") or 5),
        login_throttle_address_after=int(_env("PARLEY_LOGIN_THROTTLE_ADDRESS_AFTER", "20") or 20),
        login_throttle_base_seconds=float(_env("PARLEY_LOGIN_THROTTLE_BASE_SECONDS", "1") or 1),
        login_throttle_max_seconds=float(_env("PARLEY_LOGIN_THROTTLE_MAX_SECONDS", "900") or 900),
        login_throttle_window_seconds=float(_env("PARLEY_LOGIN_THROTTLE_WINDOW_SECONDS", "86400") or 86400),
        trusted_proxies=_trusted_proxies(_env("PARLEY_TRUSTED_PROXIES", "") or ""),
        redis_channel=_env("PARLEY_REDIS_CHANNEL", "parley") or "parley",
        socket_max_buffer_bytes=_positive_int("PARLEY_SOCKET_MAX_BUFFER_BYTES", 1024 * 1024),
        socket_max_queued=_positive_int("PARLEY_SOCKET_MAX_QUEUED", 1000),
        evidence_root=evidence_dir,
        evidence_max_bytes=_positive_int("PARLEY_EVIDENCE_MAX_BYTES", 4 * 1024**3),
        **media,
    )


def _positive(name: str, default: float) -> float:
    value = float(_env(name, str(default)) or default)
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds.")
    return value


def _lease_times() -> tuple[float, float]:
    lease = _positive("PARLEY_PRESENCE_LEASE_SECONDS", 25.0)
    renew = _positive("PARLEY_PRESENCE_RENEW_SECONDS", min(10.0, lease / 2.5))
    # A lease renewed less often than it lasts would lapse while its process lives.
    if renew >= lease:
        raise ValueError("PARLEY_PRESENCE_RENEW_SECONDS must be shorter than PARLEY_PRESENCE_LEASE_SECONDS.")
    return lease, renew


def _trusted_proxies(raw: str) -> tuple[str, ...]:
    networks = tuple(part.strip() for part in raw.split(",") if part.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"PARLEY_TRUSTED_PROXIES: {network!r} is not an address or network.") from None
    return networks


@dataclass(frozen=True)
class IceServer:
    """One entry of ``PARLEY_ICE_SERVERS``: STUN or TURN URLs, and for TURN either a
    static username and credential or, with ``PARLEY_TURN_SECRET``, none (browsers then
    get short-lived credentials: server/media/ice.py)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    @property
    def is_turn(self) -> bool:
        return any(url.startswith(("turn:", "turns:")) for url in self.urls)


def parse_ice_servers(value: str) -> tuple[IceServer, ...]:
    """``PARLEY_ICE_SERVERS``: a JSON list like the browser's RTCIceServer list."""
    try:
        raw = json.loads(value)
    except ValueError:
        raise ValueError("PARLEY_ICE_SERVERS must be a JSON list of {\"urls\": ...} objects.") from None
    if not isinstance(raw, list):
        raise ValueError("PARLEY_ICE_SERVERS must be a JSON list of {\"urls\": ...} objects.")
    servers = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) - {"urls", "username", "credential"}:
            raise ValueError("PARLEY_ICE_SERVERS: each entry has urls, and optionally username and credential.")
        urls = entry.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not all(isinstance(u, str) and u.startswith(ICE_SCHEMES) for u in urls):
            raise ValueError("PARLEY_ICE_SERVERS: urls must be stun:, turn: or turns: URLs.")
        username, credential = entry.get("username"), entry.get("credential")
        if not all(v is None or isinstance(v, str) for v in (username, credential)):
            raise ValueError("PARLEY_ICE_SERVERS: username and credential must be strings.")
        servers.append(IceServer(tuple(urls), username, credential))
    return tuple(servers)


class _Media(TypedDict):
    """The media fields of ``Settings`` (their names), read and checked together."""

    media_engine: str
    janus_url: str | None
    janus_api_secret: str | None
    janus_admin_key: str | None
    ice_servers: tuple[IceServer, ...]
    turn_secret: str | None


def _media_settings() -> _Media:
    engine = (_env("PARLEY_MEDIA_ENGINE", "embedded") or "embedded").strip().lower()
    if engine not in MEDIA_ENGINES:
        raise ValueError("PARLEY_MEDIA_ENGINE must be embedded or janus.")
    janus_url = _env("PARLEY_JANUS_URL")
    if engine == "janus" and not janus_url:
        raise ValueError("PARLEY_MEDIA_ENGINE=janus needs PARLEY_JANUS_URL (Janus's HTTP API, e.g. http://janus:8088/janus).")
    if janus_url and not janus_url.startswith(("http://", "https://")):
        raise ValueError("PARLEY_JANUS_URL must be an http:// or https:// URL.")
    servers = parse_ice_servers(_env("PARLEY_ICE_SERVERS", "[]") or "[]")
    turn_secret = _env("PARLEY_TURN_SECRET")
    for server in servers:
        if server.is_turn and turn_secret is None and not (server.username and server.credential):
            raise ValueError("PARLEY_ICE_SERVERS: a TURN server needs PARLEY_TURN_SECRET (or a username and credential).")
    return _Media(
        media_engine=engine,
        janus_url=janus_url.rstrip("/") if janus_url else None,
        janus_api_secret=_env("PARLEY_JANUS_API_SECRET"),
        janus_admin_key=_env("PARLEY_JANUS_ADMIN_KEY"),
        ice_servers=servers,
        turn_secret=turn_secret,
    )


def _smtp_security(value: str) -> str:
    value = value.strip().lower()
    if value not in {"starttls", "tls", "none"}:
        raise ValueError("PARLEY_SMTP_SECURITY must be starttls, tls or none.")
    return value


def _audit_heads(value: str) -> str:
    value = value.strip().lower()
    if value not in {"file", "log"}:
        raise ValueError("PARLEY_AUDIT_HEADS must be file or log.")
    return value


def _positive_int(name: str, default: int) -> int:
    value = int(_env(name, str(default)) or default)
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number.")
    return value


def _path(value: str | None) -> Path | None:
    return Path(value).resolve() if value else None
