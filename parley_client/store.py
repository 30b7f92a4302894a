"""The command-line client's config directory: its enrollment (server, login cookie,
device keys sealed with a passphrase), its pins, and per-file upload state.

Everything lives under ``$XDG_CONFIG_HOME/parley`` (default ``~/.config/parley``), the
directory 0700 and every file 0600, each written whole to a temporary file and
renamed (a crash leaves the old file or the new one, never half of one)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley_client.errors import FormatError


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "parley"


def ensure_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_json(path: Path, value: object) -> None:
    ensure_dir(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(value, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as source:
            return json.load(source)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path} is damaged ({err}).") from err


@dataclass
class Enrollment:
    """Who this install is: the server, its login, its person and device, its keys
    (a recovery blob sealed with the passphrase, the one sealing format Parley has)."""

    server: str
    cookie: str
    person: str
    device: str
    visit: str | None
    sig_alg: str
    sealed_keys: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"v": 1, "server": self.server, "cookie": self.cookie, "person": self.person, "device": self.device,
                "visit": self.visit, "sig_alg": self.sig_alg, "sealed_keys": self.sealed_keys}

    @classmethod
    def from_json(cls, value: Any) -> Enrollment:
        try:
            if value["v"] != 1:
                raise FormatError("Unknown enrollment file version.")
            return cls(server=str(value["server"]), cookie=str(value["cookie"]), person=str(value["person"]),
                       device=str(value["device"]), visit=value.get("visit"), sig_alg=str(value["sig_alg"]),
                       sealed_keys=dict(value["sealed_keys"]))
        except (KeyError, TypeError, ValueError) as err:
            raise FormatError(f"The enrollment file is damaged ({err}).") from err


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or config_dir()

    @property
    def enrollment_path(self) -> Path:
        return self.root / "client.json"

    @property
    def pins_path(self) -> Path:
        return self.root / "pins.json"

    def load_enrollment(self) -> Enrollment | None:
        if not self.enrollment_path.exists():
            return None
        return Enrollment.from_json(read_json(self.enrollment_path))

    def save_enrollment(self, enrollment: Enrollment) -> None:
        write_json(self.enrollment_path, enrollment.as_json())

    def load_pins(self) -> dict[str, Any]:
        if not self.pins_path.exists():
            return {}
        value = read_json(self.pins_path)
        if not isinstance(value, dict):
            raise FormatError(f"{self.pins_path} is damaged.")
        return value

    def save_pins(self, pins: dict[str, Any]) -> None:
        write_json(self.pins_path, pins)

    def upload_state_path(self, server: str, visit: str, session: str, path: Path) -> Path:
        key = "\0".join((server, visit, session, str(path.resolve())))
        return self.root / "uploads" / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".json")
