"""service orders: the create body's hash; cancellations accepted, not acknowledged

``body_hash`` tells a retried POST (the same ``externalId`` and body: the order again, 200)
from a conflict (the same ``externalId``, another body: 409). Orders placed before have none
and are taken as the same body. A cancellation request's first state is TMF641's
``accepted`` (``TaskStateType``), which the hub called ``acknowledged``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('service_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_hash', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
    op.execute("UPDATE cancel_service_order SET state = 'accepted' WHERE state = 'acknowledged'")


def downgrade() -> None:
    op.execute("UPDATE cancel_service_order SET state = 'acknowledged' WHERE state = 'accepted'")
    with op.batch_alter_table('service_order', schema=None) as batch_op:
        batch_op.drop_column('body_hash')
