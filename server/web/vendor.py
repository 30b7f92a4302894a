"""Browser libraries whose ES modules are many files importing each other by package
name (``import ... from "@hpke/common"``). Browsers resolve such bare specifiers only
through an import map, an inline script the CSP (``script-src 'self'``) forbids, so
Parley serves these packages' ``esm/`` trees itself with the package names replaced
by their URLs under ``/static/vendor/``. No build step: the files are read from
``node_modules`` (as ``npm ci`` installed them) once, at the first request.

Only ``.js`` files under a listed package's ``esm/`` directory are served; anything
else is 404.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

URL_PREFIX = "/static/vendor/esm"
# Package name -> its ESM directory, relative to client_web/node_modules.
ESM_PACKAGES = {
    "@hpke/common": "@hpke/common/esm",
    "@hpke/core": "@hpke/core/esm",
}
# A static import or re-export naming a package, `from "@hpke/common"`, on a line that
# starts the statement (`import`/`export`) or ends a multi-line one (`} from`); the same
# words in comments (usage examples) stay as they are. Dynamic `import("crypto")` in
# @hpke/common is only reached outside browsers and stays as is too.
BARE_FROM = re.compile(r'^([ \t]*(?:(?:import|export)\b[^\n]*?|\}[ \t]*)from[ \t]*)"(@[a-z0-9-]+/[a-z0-9-]+)"', re.M)


def package_url(name: str) -> str:
    """The URL of a package's entry module: ``/static/vendor/esm/@hpke/core/mod.js``."""
    return f"{URL_PREFIX}/{name}/mod.js"


def resolve_specifiers(source: str) -> str:
    """Replace the listed package names in static imports by their URLs; any other
    bare name is an error (the browser would refuse to load the module)."""

    def swap(match: re.Match[str]) -> str:
        name = match[2]
        if name not in ESM_PACKAGES:
            raise ValueError(f"unlisted package imported by a vendor module: {name}")
        return f'{match[1]}"{package_url(name)}"'

    return BARE_FROM.sub(swap, source)


class EsmVendor:
    """Serves ``/static/vendor/esm/{package}/{path}.js`` from node_modules."""

    def __init__(self, node_modules: Path) -> None:
        self.node_modules = node_modules
        self.cache: dict[str, bytes] = {}

    def body(self, name: str) -> bytes | None:
        cached = self.cache.get(name)
        if cached is not None:
            return cached
        for package, folder in ESM_PACKAGES.items():
            if not name.startswith(package + "/"):
                continue
            rel = name[len(package) + 1:]
            if not rel.endswith(".js") or any(part in ("", ".", "..") for part in rel.split("/")):
                return None
            root = (self.node_modules / folder).resolve()
            path = (root / rel).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                return None
            data = resolve_specifiers(path.read_text(encoding="utf-8")).encode()
            self.cache[name] = data
            return data
        return None

    async def handle(self, request: web.Request) -> web.Response:
        data = self.body(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(
            body=data, content_type="text/javascript", charset="utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )
