"""availability calendars schedule runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:25:38.095152
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('schedule_run',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('problem', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('accepted_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_index', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['person.id'], name=op.f('fk_schedule_run_created_by_person'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_schedule_run_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_run'))
    )
    with op.batch_alter_table('schedule_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_run_visit_id'), ['visit_id'], unique=False)

    op.create_table('unavailability',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('start_utc', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_utc', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_unavailability_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unavailability'))
    )
    with op.batch_alter_table('unavailability', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unavailability_person_id'), ['person_id'], unique=False)

    op.create_table('calendar_feed',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('membership_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_calendar_feed_membership_id_membership'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_feed')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_calendar_feed_token_hash'))
    )
    with op.batch_alter_table('calendar_feed', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_feed_membership_id'), ['membership_id'], unique=False)

    with op.batch_alter_table('agenda_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sequence', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cancelled_at', server.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('updated_at', server.db.base.UTCDateTime(timezone=True), nullable=True))

    # Existing people get no holidays; the default exists only to fill those rows.
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holidays', sa.JSON(), server_default='[]', nullable=False))
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.alter_column('holidays', server_default=None)



def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('holidays')

    with op.batch_alter_table('agenda_session', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('sequence')

    with op.batch_alter_table('calendar_feed', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_feed_membership_id'))

    op.drop_table('calendar_feed')
    with op.batch_alter_table('unavailability', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unavailability_person_id'))

    op.drop_table('unavailability')
    with op.batch_alter_table('schedule_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_run_visit_id'))

    op.drop_table('schedule_run')
