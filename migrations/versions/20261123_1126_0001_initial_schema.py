"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 11:26:41.891110
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_entry',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('actor_person_id', sa.String(length=32), nullable=True),
    sa.Column('visit_id', sa.String(length=32), nullable=True),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_visit_id'), ['visit_id'], unique=False)

    op.create_table('person',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('working_hours', sa.JSON(), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person')),
    sa.UniqueConstraint('email', name=op.f('uq_person_email'))
    )
    op.create_table('visit',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('state_under_review', sa.String(length=200), nullable=False),
    sa.Column('reviewing_states', sa.JSON(), nullable=False),
    sa.Column('cycle', sa.String(length=50), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('archived_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit')),
    sa.UniqueConstraint('slug', name=op.f('uq_visit_slug'))
    )
    op.create_table('agenda_session',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('start_utc', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_utc', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('articles', sa.JSON(), nullable=False),
    sa.Column('access', sa.String(length=20), nullable=False),
    sa.Column('requires_admission', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_agenda_session_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agenda_session'))
    )
    with op.batch_alter_table('agenda_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agenda_session_visit_id'), ['visit_id'], unique=False)

    op.create_table('delegation',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_delegation_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegation'))
    )
    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegation_visit_id'), ['visit_id'], unique=False)

    op.create_table('login_session',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_login_session_person_id_person'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_login_session_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_login_session_token_hash'))
    )
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_session_person_id'), ['person_id'], unique=False)

    op.create_table('agenda_item',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('articles', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['agenda_session.id'], name=op.f('fk_agenda_item_session_id_agenda_session'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agenda_item'))
    )
    with op.batch_alter_table('agenda_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agenda_item_session_id'), ['session_id'], unique=False)

    op.create_table('membership',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('delegation_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['delegation_id'], ['delegation.id'], name=op.f('fk_membership_delegation_id_delegation'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_membership_person_id_person'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_membership_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership')),
    sa.UniqueConstraint('visit_id', 'person_id', name=op.f('uq_membership_visit_id_person_id'))
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_visit_id'), ['visit_id'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('membership_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('spent_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_invitation_membership_id_membership'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitation')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitation_token_hash'))
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_membership_id'), ['membership_id'], unique=False)

    op.create_table('room_event',
    sa.Column('session_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('membership_id', sa.String(length=32), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_room_event_membership_id_membership')),
    sa.ForeignKeyConstraint(['session_id'], ['agenda_session.id'], name=op.f('fk_room_event_session_id_agenda_session'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'seq', name=op.f('pk_room_event')),
    sa.UniqueConstraint('session_id', 'membership_id', 'idempotency_key', name=op.f('uq_room_event_session_id_membership_id_idempotency_key'))
    )
    op.create_table('session_invitee',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=False),
    sa.Column('membership_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_session_invitee_membership_id_membership'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['agenda_session.id'], name=op.f('fk_session_invitee_session_id_agenda_session'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_session_invitee')),
    sa.UniqueConstraint('session_id', 'membership_id', name=op.f('uq_session_invitee_session_id_membership_id'))
    )
    with op.batch_alter_table('session_invitee', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_invitee_session_id'), ['session_id'], unique=False)

    op.create_table('session_role',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=False),
    sa.Column('membership_id', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_session_role_membership_id_membership'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['agenda_session.id'], name=op.f('fk_session_role_session_id_agenda_session'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_session_role')),
    sa.UniqueConstraint('session_id', 'membership_id', 'role', name=op.f('uq_session_role_session_id_membership_id_role'))
    )
    with op.batch_alter_table('session_role', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_role_session_id'), ['session_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('session_role', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_role_session_id'))

    op.drop_table('session_role')
    with op.batch_alter_table('session_invitee', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_invitee_session_id'))

    op.drop_table('session_invitee')
    op.drop_table('room_event')
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_membership_id'))

    op.drop_table('invitation')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_visit_id'))
        batch_op.drop_index(batch_op.f('ix_membership_person_id'))

    op.drop_table('membership')
    with op.batch_alter_table('agenda_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agenda_item_session_id'))

    op.drop_table('agenda_item')
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_session_person_id'))

    op.drop_table('login_session')
    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegation_visit_id'))

    op.drop_table('delegation')
    with op.batch_alter_table('agenda_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agenda_session_visit_id'))

    op.drop_table('agenda_session')
    op.drop_table('visit')
    op.drop_table('person')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_visit_id'))

    op.drop_table('audit_entry')
