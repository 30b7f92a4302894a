"""audit chains and checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000

Per-visit keyed audit chains (primary key ``(chain, seq)``) and signed checkpoints.

Existing entries are kept exactly as they are, in a chain named ``legacy``: their
plain SHA-256 hashes are not recomputed under the new key. Re-chaining them here would
need the server's secret key inside the migration and would certify, with the key,
whatever state the rows are in today, including any tampering done before the
upgrade. ``parley audit verify`` checks the legacy chain with its old rule and reports
it apart; ``parley audit checkpoint`` after the upgrade signs its final head.

The downgrade puts every entry back into one sequence ordered by time and re-links it
with the plain SHA-256 the 0002 code verifies. That gives up the keyed evidence, so
run ``parley audit verify`` before downgrading and keep its output.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_CHAIN = "legacy"
GENESIS = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain', sa.String(length=80), nullable=True))
    op.execute(sa.text("UPDATE audit_entry SET chain = :c").bindparams(c=LEGACY_CHAIN))
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.alter_column('chain', existing_type=sa.String(length=80), nullable=False)
        batch_op.drop_constraint('pk_audit_entry', type_='primary')
        batch_op.create_primary_key('pk_audit_entry', ['chain', 'seq'])

    op.create_table('audit_checkpoint',
    sa.Column('chain', sa.String(length=80), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('key_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('chain', 'seq', name=op.f('pk_audit_checkpoint'))
    )


_entries = sa.table(
    'audit_entry',
    sa.column('chain', sa.String()),
    sa.column('seq', sa.Integer()),
    sa.column('at', server.db.base.UTCDateTime(timezone=True)),
    sa.column('action', sa.String()),
    sa.column('actor_person_id', sa.String()),
    sa.column('visit_id', sa.String()),
    sa.column('subject', sa.String()),
    sa.column('data', sa.JSON()),
    sa.column('prev_hash', sa.String()),
    sa.column('hash', sa.String()),
)


def _plain_digest(prev_hash: str, row: dict[str, object]) -> str:
    # The 0002 rule, copied rather than imported: a migration must not change when
    # the application's code does.
    body = json.dumps(
        {
            "seq": row["seq"],
            "at": row["at"].astimezone(UTC).isoformat(),  # type: ignore[attr-defined]
            "action": row["action"],
            "actor": row["actor_person_id"],
            "visit": row["visit_id"],
            "subject": row["subject"],
            "data": row["data"],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def downgrade() -> None:
    op.drop_table('audit_checkpoint')
    bind = op.get_bind()
    # Legacy entries first (they are older than any keyed one), then by time.
    legacy_first = sa.case((_entries.c.chain == LEGACY_CHAIN, 0), else_=1)
    rows = [
        dict(r._mapping)
        for r in bind.execute(
            sa.select(_entries).order_by(legacy_first, _entries.c.at, _entries.c.chain, _entries.c.seq)
        )
    ]
    bind.execute(sa.delete(_entries))
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_constraint('pk_audit_entry', type_='primary')
        batch_op.drop_column('chain')
        batch_op.create_primary_key('pk_audit_entry', ['seq'])
    prev = GENESIS
    relinked = []
    for number, row in enumerate(rows, start=1):
        row = {k: v for k, v in row.items() if k != 'chain'}
        row["seq"] = number
        row["prev_hash"] = prev
        row["hash"] = prev = _plain_digest(prev, row)
        relinked.append(row)
    old = sa.table('audit_entry', *[sa.column(c.name, c.type) for c in _entries.c if c.name != 'chain'])
    if relinked:
        bind.execute(sa.insert(old), relinked)
