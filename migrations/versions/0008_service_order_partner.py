"""service orders: the wholesale partner that placed an order

A partner's OAuth2 token carries its ``partner_id``; the order remembers it, so the partner
reads only its own orders. Existing orders were placed by the operator (NULL).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.create_index(batch_op.f('ix_service_order_partner_id'), ['partner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('service_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_order_partner_id'))
        batch_op.drop_column('partner_id')
