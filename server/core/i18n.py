"""gettext for pages: every user-facing string goes through ``_``.

Catalogues live in server/locale/<lang>/LC_MESSAGES/parley.mo (compiled from .po by
``pybabel compile``); a language without a catalogue falls back to the source text.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
UN_LANGUAGES = ("ar", "en", "es", "fr", "ru", "zh")
RTL = {"ar"}


@lru_cache(maxsize=16)
def translations(lang: str) -> gettext.NullTranslations:
    return gettext.translation("parley", localedir=LOCALE_DIR, languages=[lang], fallback=True)


def pick_language(preferred: list[str] | None, default: str) -> str:
    for lang in preferred or []:
        if lang in UN_LANGUAGES:
            return lang
    return default
