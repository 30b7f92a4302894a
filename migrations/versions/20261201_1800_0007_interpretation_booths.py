"""interpretation booths

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('booth',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=35), nullable=False),
    sa.Column('active_membership_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['active_membership_id'], ['membership.id'], name=op.f('fk_booth_active_membership_id_membership'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_booth_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booth')),
    sa.UniqueConstraint('visit_id', 'language', name=op.f('uq_booth_visit_id_language'))
    )
    with op.batch_alter_table('booth', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booth_visit_id'), ['visit_id'], unique=False)

    op.create_table('booth_interpreter',
    sa.Column('booth_id', sa.String(length=32), nullable=False),
    sa.Column('membership_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['booth_id'], ['booth.id'], name=op.f('fk_booth_interpreter_booth_id_booth'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], name=op.f('fk_booth_interpreter_membership_id_membership'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('booth_id', 'membership_id', name=op.f('pk_booth_interpreter')),
    sa.UniqueConstraint('booth_id', 'position', name=op.f('uq_booth_interpreter_booth_id_position')),
    sa.UniqueConstraint('membership_id', name=op.f('uq_booth_interpreter_membership_id'))
    )


def downgrade() -> None:
    op.drop_table('booth_interpreter')
    with op.batch_alter_table('booth', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_booth_visit_id'))
    op.drop_table('booth')
