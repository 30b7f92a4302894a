"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from server.agenda import models as agenda_models
from server.audit import models as audit_models
from server.booths import models as booth_models
from server.calendars import models as calendar_models
from server.db.base import Base
from server.evidence import models as evidence_models
from server.jobs import models as job_models
from server.people import models as people_models
from server.presence import models as presence_models
from server.room import models as room_models
from server.scheduling import models as scheduling_models
from server.visits import models as visit_models

__all__ = ["Base", "agenda_models", "audit_models", "booth_models", "calendar_models", "evidence_models", "job_models", "people_models", "presence_models", "room_models", "scheduling_models", "visit_models"]
