"""Words that templates translate from data (``word(role)``, ``word(access)``...).

Listed here so gettext extraction finds them; ``_`` is a no-op marker.

Data never goes through the templates' ``_``: Jinja's new-style gettext marks its
result safe (no escaping) and applies ``%`` formatting, so a visit titled
``<script>`` or ``100%`` would be injected or crash the page. ``word`` translates
only the known words below and returns a plain string that autoescaping handles.
"""

from __future__ import annotations

from collections.abc import Callable


def _(text: str) -> str:
    return text


DATA_WORDS = (
    # roles
    _("secretariat"), _("expert"), _("delegate"), _("interpreter"), _("stakeholder"), _("observer"),
    # session access
    _("open"), _("closed"),
    # visit status and cycle
    _("preparing"), _("in_progress"), _("concluded"), _("archived"), _("first"), _("second"),
    # how a login was opened
    _("invitation"), _("password"),
    # time-zone strip bands (server/scheduling/strip.py)
    _("working hours"), _("outside working hours"), _("night"), _("unknown"),
    # weekdays (server/scheduling/availability.py)
    _("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday"), _("Sunday"),
)
_KNOWN = frozenset(DATA_WORDS)


def word(gettext: Callable[[str], str], value: object) -> str:
    """``value`` translated when it is one of DATA_WORDS, otherwise as it is; never a
    format string, never marked safe."""
    text = "" if value is None else str(value)
    return str(gettext(text)) if text in _KNOWN else text
