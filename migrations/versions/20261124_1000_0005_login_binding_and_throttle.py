"""login binding to a membership, password login throttle

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('membership_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_login_session_membership_id'), ['membership_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_login_session_membership_id_membership'), 'membership',
            ['membership_id'], ['id'], ondelete='CASCADE',
        )
    # Existing invitation logins are bound to the membership of their visit; a login
    # whose membership is gone grants nothing any more, so it is ended.
    op.execute(
        "UPDATE login_session SET membership_id = ("
        " SELECT membership.id FROM membership"
        " WHERE membership.visit_id = login_session.visit_id"
        " AND membership.person_id = login_session.person_id)"
        " WHERE via = 'invitation'"
    )
    op.execute(
        "UPDATE login_session SET revoked_at = CURRENT_TIMESTAMP"
        " WHERE via = 'invitation' AND membership_id IS NULL AND revoked_at IS NULL"
    )
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('blocked_until', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('audited_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unaudited', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttle_last_failure_at'), ['last_failure_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttle_last_failure_at'))
    op.drop_table('login_throttle')
    with op.batch_alter_table('login_session', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_login_session_membership_id_membership'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_login_session_membership_id'))
        batch_op.drop_column('membership_id')
