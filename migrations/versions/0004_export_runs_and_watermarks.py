"""export runs and watermarks

Every export run is recorded (window, rows, files, bytes, manifest, status); each export keeps
one watermark. Indexes on the change times the incremental exports read by.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:05:21.954450
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('export_run',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('export_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('scheduled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('watermark_from', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('watermark_to', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('files', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('manifest_uri', sqlmodel.sql.sqltypes.AutoString(length=1200), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('export_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_run_export_id'), ['export_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_run_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_run_status'), ['status'], unique=False)

    op.create_table('export_watermark',
    sa.Column('export_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('watermark', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('export_id')
    )
    with op.batch_alter_table('order_state_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_state_change_at'), ['at'], unique=False)

    with op.batch_alter_table('service_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_order_completion_date'), ['completion_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_order_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('service_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_order_updated_at'))
        batch_op.drop_index(batch_op.f('ix_service_order_completion_date'))

    with op.batch_alter_table('order_state_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_state_change_at'))

    op.drop_table('export_watermark')
    with op.batch_alter_table('export_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_run_status'))
        batch_op.drop_index(batch_op.f('ix_export_run_started_at'))
        batch_op.drop_index(batch_op.f('ix_export_run_export_id'))

    op.drop_table('export_run')
