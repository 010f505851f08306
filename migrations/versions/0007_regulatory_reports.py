"""regulatory reports

One row per version of a report to the regulator: its figures and findings, the approval,
the receipt and verdict, and where the exact bytes submitted are archived.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('regulatory_report',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('report_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('operator_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('prepared_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('indicators', sa.JSON(), nullable=True),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('task_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('receipt_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('document_uri', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('document_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('due_date', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('supersedes', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('report_type', 'operator_id', 'period', 'version', name='uq_regulatory_report_version')
    )
    with op.batch_alter_table('regulatory_report', schema=None) as batch_op:
        for column in ('report_type', 'operator_id', 'period', 'status', 'workflow_id',
                       'receipt_id', 'created_at'):
            batch_op.create_index(batch_op.f(f'ix_regulatory_report_{column}'), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('regulatory_report', schema=None) as batch_op:
        for column in ('report_type', 'operator_id', 'period', 'status', 'workflow_id',
                       'receipt_id', 'created_at'):
            batch_op.drop_index(batch_op.f(f'ix_regulatory_report_{column}'))
    op.drop_table('regulatory_report')
