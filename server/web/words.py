"""Words that templates translate from data (``_(role)``, ``_(access)``...).

Listed here so gettext extraction finds them; ``_`` is a no-op marker.
"""

from __future__ import annotations


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
