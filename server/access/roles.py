"""The access vocabulary: a member's role in a visit and a session's access level.

The policy (``access/policy.py``) is written in these terms only, so it imports no
domain models; models store them as strings.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SECRETARIAT = "secretariat"
    EXPERT = "expert"
    DELEGATE = "delegate"  # the State under review
    INTERPRETER = "interpreter"
    STAKEHOLDER = "stakeholder"
    OBSERVER = "observer"


class Access(StrEnum):
    OPEN = "open"
    STAKEHOLDER = "stakeholder"
    CLOSED = "closed"
