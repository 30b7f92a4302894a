"""Jinja2 environment and page rendering with per-request language."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server.core.i18n import RTL, translations
from server.web.keys import SETTINGS, TEMPLATES
from server.web.words import word

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(
    request: web.Request, name: str, context: dict[str, Any], *, status: int = 200, lang: str | None = None
) -> web.Response:
    env = request.app[TEMPLATES]
    lang = lang or request.app[SETTINGS].default_language
    trans = translations(lang)
    template = env.get_template(name)
    env.install_gettext_translations(trans, newstyle=True)  # type: ignore[attr-defined]
    html = template.render(
        lang=lang, dir="rtl" if lang in RTL else "ltr", word=partial(word, trans.gettext), **context
    )
    return web.Response(text=html, content_type="text/html", status=status)
