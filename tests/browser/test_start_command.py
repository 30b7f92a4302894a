"""What a new user does: run the README's start command in a fresh copy of the
project, open an invitation link it printed, press Join, see the visit and a room.

The copy leaves out everything a clone would not have (.git, .venv, var,
node_modules, caches), so the command really installs the venv and the npm
packages, creates ./var, loads the demo and serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import close_tabs, new_tab
from tests.conftest import free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "var", "node_modules", "__pycache__", "*.egg-info", ".pytest_cache",
    ".hypothesis", "build", "*.pyc",
)
INSTALL_TIMEOUT = 720.0  # a cold pip install and npm ci


def readme_start_command() -> str:
    """The command under the README's "Try it" heading, exactly as written there."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Try it", 1)[1]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, re.S)
    assert block, "README: no code block under 'Try it'"
    lines = [ln.strip() for ln in block[1].splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(lines) == 1, f"README: the start command should be one line, got {lines}"
    return lines[0]


def clean_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") and k != "VIRTUAL_ENV"}
    # Whatever venv runs these tests must not leak into the new user's shell.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/")
    env["PARLEY_PORT"] = str(port)
    return env


@pytest.mark.timeout(900)
async def test_the_readme_start_command_serves_the_demo(browser: Browser) -> None:
    command = readme_start_command()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="parley-fresh-") as tmp:
        work = Path(tmp) / "parley"
        shutil.copytree(ROOT, work, ignore=NOT_IN_A_CLONE, symlinks=True)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=work, env=clean_env(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole below
        )
        output: list[str] = []
        link = re.compile(rf"^\s*expert\s.*?(http://127\.0\.0\.1:{port}/invite/[A-Za-z0-9_-]{{20,}})\s*$")
        started = time.monotonic()

        async def drain() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                output.append(raw.decode(errors="replace").rstrip("\n"))

        reader = asyncio.create_task(drain())
        try:
            invite = await _wait_for(lambda: next((m[1] for ln in output if (m := link.match(ln))), None),
                                     proc, output, "an expert's invitation link")
            await _wait_for(lambda: any("Parley is serving on" in ln for ln in output) or None,
                            proc, output, "the server to start")
            await _healthy(port, proc, output)
            setup_seconds = time.monotonic() - started
            assert (work / "var" / "parley.db").exists(), "the embedded database lives under ./var"

            tab = await new_tab(browser, "new user", f"http://127.0.0.1:{port}")
            try:
                await tab.join(invite)
                page = tab.page
                await expect(page.get_by_role("heading", level=1)).to_be_visible()
                await expect(page.get_by_role("heading", name="Agenda")).to_be_visible()
                sessions = page.locator("ol.agenda > li.session")
                assert await sessions.count() >= 3, "the demo agenda has open, closed and stakeholder sessions"
                await expect(sessions.first.locator("abbr.zone")).not_to_have_text("")
                # Into the first session's room: the npm-installed client connects.
                await sessions.first.get_by_role("link").click()
                await tab.connected()
                await expect(page.locator("#room, #lobby-notice").filter(visible=True)).to_have_count(1)
            finally:
                await close_tabs([tab])
            print(f"start command ready after {setup_seconds:.0f}s")
        finally:
            await _stop(proc)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        assert proc.returncode is not None


async def _wait_for(find, proc, output: list[str], what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + INSTALL_TIMEOUT
    while (found := find()) is None:
        if proc.returncode is not None:
            raise AssertionError(f"the start command exited ({proc.returncode}) before {what}:\n" + "\n".join(output[-40:]))
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(output[-40:]))
        await asyncio.sleep(0.2)
    return found


async def _healthy(port: int, proc, output: list[str]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            if proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError("the server never became healthy:\n" + "\n".join(output[-40:]))
            await asyncio.sleep(0.2)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Ctrl+C to the whole process group, as a user would; force only if it hangs."""
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            continue
