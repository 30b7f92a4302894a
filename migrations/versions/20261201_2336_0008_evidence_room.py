"""evidence room: devices, statements, recovery blobs, device links, documents as ciphertext

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:36:57.048291
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.base

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('device',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('sig_alg', sa.String(length=10), nullable=False),
    sa.Column('sig_pub', sa.LargeBinary(length=65), nullable=False),
    sa.Column('enc_pub', sa.LargeBinary(length=32), nullable=False),
    sa.Column('fingerprint', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_device_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device'))
    )
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_person_id'), ['person_id'], unique=False)

    op.create_table('device_statement',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('signer_device_id', sa.String(length=32), nullable=False),
    sa.Column('subject_device_id', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['signer_device_id'], ['device.id'], name=op.f('fk_device_statement_signer_device_id_device'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subject_device_id'], ['device.id'], name=op.f('fk_device_statement_subject_device_id_device'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_statement')),
    sa.UniqueConstraint('kind', 'signer_device_id', 'subject_device_id', name=op.f('uq_device_statement_kind_signer_device_id_subject_device_id'))
    )
    with op.batch_alter_table('device_statement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_statement_signer_device_id'), ['signer_device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_statement_subject_device_id'), ['subject_device_id'], unique=False)

    op.create_table('recovery_blob',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('blob', sa.JSON(), nullable=False),
    sa.Column('updated_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_recovery_blob_device_id_device'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_recovery_blob'))
    )
    op.create_table('document',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=True),
    sa.Column('item_id', sa.String(length=32), nullable=True),
    sa.Column('articles', sa.JSON(), nullable=False),
    sa.Column('uploader_person_id', sa.String(length=32), nullable=False),
    sa.Column('uploader_device_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['agenda_item.id'], name=op.f('fk_document_item_id_agenda_item')),
    sa.ForeignKeyConstraint(['session_id'], ['agenda_session.id'], name=op.f('fk_document_session_id_agenda_session')),
    sa.ForeignKeyConstraint(['uploader_device_id'], ['device.id'], name=op.f('fk_document_uploader_device_id_device')),
    sa.ForeignKeyConstraint(['uploader_person_id'], ['person.id'], name=op.f('fk_document_uploader_person_id_person')),
    sa.ForeignKeyConstraint(['visit_id'], ['visit.id'], name=op.f('fk_document_visit_id_visit'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document'))
    )
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_uploader_person_id'), ['uploader_person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_visit_id'), ['visit_id'], unique=False)

    op.create_table('device_link',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('login_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('spent_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['login_id'], ['login_session.id'], name=op.f('fk_device_link_login_id_login_session'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_device_link_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_link')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_device_link_token_hash'))
    )
    with op.batch_alter_table('device_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_link_person_id'), ['person_id'], unique=False)

    op.create_table('document_version',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('document_id', sa.String(length=32), nullable=False),
    sa.Column('uploader_person_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('meta', sa.LargeBinary(), nullable=True),
    sa.Column('rekey', sa.Boolean(), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=True),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=True),
    sa.Column('uploader_device_id', sa.String(length=32), nullable=True),
    sa.Column('completed_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('replaced_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('purged_at', server.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['document.id'], name=op.f('fk_document_version_document_id_document'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploader_device_id'], ['device.id'], name=op.f('fk_document_version_uploader_device_id_device')),
    sa.ForeignKeyConstraint(['uploader_person_id'], ['person.id'], name=op.f('fk_document_version_uploader_person_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_version'))
    )
    with op.batch_alter_table('document_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_version_document_id'), ['document_id'], unique=False)

    op.create_table('document_share',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('version_id', sa.String(length=32), nullable=False),
    sa.Column('signer_device_id', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['signer_device_id'], ['device.id'], name=op.f('fk_document_share_signer_device_id_device')),
    sa.ForeignKeyConstraint(['version_id'], ['document_version.id'], name=op.f('fk_document_share_version_id_document_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_share'))
    )
    with op.batch_alter_table('document_share', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_share_version_id'), ['version_id'], unique=False)

    op.create_table('version_chunk',
    sa.Column('version_id', sa.String(length=32), nullable=False),
    sa.Column('index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['document_version.id'], name=op.f('fk_version_chunk_version_id_document_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'index', name=op.f('pk_version_chunk'))
    )
    op.create_table('wrapped_key',
    sa.Column('version_id', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(length=80), nullable=False),
    sa.Column('share_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', server.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_wrapped_key_device_id_device'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['share_id'], ['document_share.id'], name=op.f('fk_wrapped_key_share_id_document_share'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['document_version.id'], name=op.f('fk_wrapped_key_version_id_document_version'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'device_id', name=op.f('pk_wrapped_key'))
    )
    with op.batch_alter_table('wrapped_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wrapped_key_device_id'), ['device_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('wrapped_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wrapped_key_device_id'))

    op.drop_table('wrapped_key')
    op.drop_table('version_chunk')
    with op.batch_alter_table('document_share', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_share_version_id'))

    op.drop_table('document_share')
    with op.batch_alter_table('document_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_version_document_id'))

    op.drop_table('document_version')
    with op.batch_alter_table('device_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_link_person_id'))

    op.drop_table('device_link')
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_visit_id'))
        batch_op.drop_index(batch_op.f('ix_document_uploader_person_id'))
        batch_op.drop_index(batch_op.f('ix_document_session_id'))

    op.drop_table('document')
    op.drop_table('recovery_blob')
    with op.batch_alter_table('device_statement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_statement_subject_device_id'))
        batch_op.drop_index(batch_op.f('ix_device_statement_signer_device_id'))

    op.drop_table('device_statement')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_person_id'))

    op.drop_table('device')
