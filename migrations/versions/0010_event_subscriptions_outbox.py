"""event subscriptions, the event outbox, the delivery log

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    op.create_table('event_subscription',
    sa.Column('id', string(length=64), nullable=False),
    sa.Column('api', string(length=32), nullable=False),
    sa.Column('callback', string(length=2000), nullable=False),
    sa.Column('query', string(length=2000), nullable=False),
    sa.Column('secrets_sealed', sa.JSON(), nullable=False),
    sa.Column('partner_id', string(length=128), nullable=True),
    sa.Column('created_by', string(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('status', string(length=16), nullable=False),
    sa.Column('ended_reason', string(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    for column in ('api', 'partner_id', 'status'):
        op.create_index(f'ix_event_subscription_{column}', 'event_subscription', [column])
    op.create_table('event_outbox',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', string(length=36), nullable=False),
    sa.Column('domain', string(length=64), nullable=False),
    sa.Column('resource_type', string(length=64), nullable=False),
    sa.Column('resource_id', string(length=200), nullable=False),
    sa.Column('resource_seq', sa.Integer(), nullable=False),
    sa.Column('event_type', string(length=100), nullable=False),
    sa.Column('partner_id', string(length=128), nullable=True),
    sa.Column('envelope', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id'),
    sa.UniqueConstraint(
        'resource_type', 'resource_id', 'resource_seq', name='uq_event_outbox_resource_seq'
    ),
    )
    for column in ('domain', 'resource_id', 'dispatched_at'):
        op.create_index(f'ix_event_outbox_{column}', 'event_outbox', [column])
    op.create_table('event_delivery',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscription_id', string(length=64), nullable=False),
    sa.Column('event_id', string(length=36), nullable=False),
    sa.Column('event_seq', sa.Integer(), nullable=False),
    sa.Column('event_type', string(length=100), nullable=False),
    sa.Column('resource_key', string(length=270), nullable=False),
    sa.Column('resource_seq', sa.Integer(), nullable=False),
    sa.Column('status', string(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', string(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('dead_letter_id', string(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscription_id', 'event_id', name='uq_event_delivery_event'),
    )
    op.create_index(
        'ix_event_delivery_lane',
        'event_delivery',
        ['subscription_id', 'status', 'resource_key', 'resource_seq'],
    )


def downgrade() -> None:
    op.drop_table('event_delivery')
    op.drop_table('event_outbox')
    op.drop_table('event_subscription')
