"""partner applications

One row per wholesale partner: its application, the TMF632 organization and TMF669 party role
it became, what was provisioned for it (sealed secrets only), and where its onboarding stands.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:47:15
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

INDEXED = ('status', 'workflow_id', 'registration_number', 'vat_id', 'name', 'created_at')
UNIQUE = ('organization_id', 'party_role_id')


def upgrade() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    op.create_table('partner_application',
    sa.Column('id', string(length=64), nullable=False),
    sa.Column('status', string(length=24), nullable=False),
    sa.Column('workflow_id', string(length=200), nullable=False),
    sa.Column('registration_number', string(length=64), nullable=False),
    sa.Column('vat_id', string(length=32), nullable=False),
    sa.Column('name', string(length=200), nullable=False),
    sa.Column('organization_id', string(length=64), nullable=False),
    sa.Column('organization_status', string(length=24), nullable=False),
    sa.Column('party_role_id', string(length=64), nullable=False),
    sa.Column('party_role_status', string(length=24), nullable=False),
    sa.Column('organization', sa.JSON(), nullable=False),
    sa.Column('representatives', sa.JSON(), nullable=False),
    sa.Column('callback_url', string(length=2000), nullable=False),
    sa.Column('requested_scopes', sa.JSON(), nullable=False),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('high_risk', sa.Boolean(), nullable=False),
    sa.Column('task_id', string(length=64), nullable=True),
    sa.Column('applied_by', string(length=200), nullable=False),
    sa.Column('approved_by', sa.JSON(), nullable=False),
    sa.Column('billing_account_id', string(length=64), nullable=True),
    sa.Column('crm_recorded', sa.Boolean(), nullable=False),
    sa.Column('client_id', string(length=200), nullable=True),
    sa.Column('registration_client_uri', string(length=2000), nullable=True),
    sa.Column('client_secret_sealed', string(), nullable=True),
    sa.Column('registration_token_sealed', string(), nullable=True),
    sa.Column('webhook_secret_sealed', string(), nullable=True),
    sa.Column('callback_registered', sa.Boolean(), nullable=False),
    sa.Column('credentials_issued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('credentials_issued_to', string(length=200), nullable=True),
    sa.Column('offboarding_requested_by', string(length=200), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('error_message', string(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('partner_application', schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f'ix_partner_application_{column}'), [column], unique=False)
        for column in UNIQUE:
            batch_op.create_index(batch_op.f(f'ix_partner_application_{column}'), [column], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('partner_application', schema=None) as batch_op:
        for column in INDEXED + UNIQUE:
            batch_op.drop_index(batch_op.f(f'ix_partner_application_{column}'))
    op.drop_table('partner_application')
