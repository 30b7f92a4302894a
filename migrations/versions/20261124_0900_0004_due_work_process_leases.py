"""due work process leases

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('due_work',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('due_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('done_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_due_work')),
    sa.UniqueConstraint('kind', 'key', name=op.f('uq_due_work_kind_key'))
    )
    with op.batch_alter_table('due_work', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_due_work_due_at'), ['due_at'], unique=False)

    op.create_table('process_lease',
    sa.Column('process_id', sa.String(length=40), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('started_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('process_id', name=op.f('pk_process_lease'))
    )


def downgrade() -> None:
    op.drop_table('process_lease')
    with op.batch_alter_table('due_work', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_due_work_due_at'))

    op.drop_table('due_work')
