"""The Spanish catalogue is complete and compiled: every string the code and the
templates mark for translation has a Spanish text, and the .mo served at run time is
the one the .po compiles to (a string added without a translation, or a .po edited
without compiling, fails here)."""

from __future__ import annotations

import gettext
from io import BytesIO
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "server/locale/es/LC_MESSAGES/parley.po"
MO = PO.with_suffix(".mo")
METHODS = [("server/**.py", "python"), ("server/templates/**.html", "jinja2")]
OPTIONS = {"server/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                        "lstrip_blocks": "true"}}


def marked() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), METHODS, options_map=OPTIONS, keywords={"_": None, "gettext": None, "ngettext": (1, 2)}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_marked_string_has_a_spanish_text() -> None:
    with PO.open("rb") as f:
        catalogue = read_po(f)
    spanish = {
        (m.id if isinstance(m.id, str) else m.id[0]): m.string
        for m in catalogue if m.id and not m.fuzzy
    }
    missing = sorted(
        msg for msg in marked()
        if not (spanish.get(msg) if isinstance(spanish.get(msg), str) else all(spanish.get(msg) or ()))
    )
    assert missing == [], f"{len(missing)} strings without a Spanish text, e.g. {missing[:5]}"


def test_the_compiled_catalogue_matches_its_source() -> None:
    with PO.open("rb") as f:
        catalogue = read_po(f)
    compiled = BytesIO()
    write_mo(compiled, catalogue)
    with MO.open("rb") as f:
        served = gettext.GNUTranslations(f)
    fresh = gettext.GNUTranslations(BytesIO(compiled.getvalue()))
    assert served._catalog == fresh._catalog, "run: .venv/bin/pybabel compile -d server/locale -D parley"  # type: ignore[attr-defined]
    assert served.gettext("Join audio") == "Unirse al audio"
