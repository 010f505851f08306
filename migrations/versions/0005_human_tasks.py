"""human tasks

The task inbox: every human task a process opened (approvals, parked steps), the groups that
may decide it, and each task's audit trail (created, claimed, escalated, completed, ...).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:43:30.962261
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('human_task',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('process', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('decisions', sa.JSON(), nullable=False),
    sa.Column('form', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('excluded_deciders', sa.JSON(), nullable=False),
    sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('follow_up_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('escalation_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('dead_letter_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_task_assignee'), ['assignee'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_dead_letter_id'), ['dead_letter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_priority'), ['priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_process'), ['process'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_reference'), ['reference'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_workflow_id'), ['workflow_id'], unique=False)

    op.create_table('human_task_candidate',
    sa.Column('task_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('group_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['human_task.id'], ),
    sa.PrimaryKeyConstraint('task_id', 'group_name')
    )
    with op.batch_alter_table('human_task_candidate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_task_candidate_group_name'), ['group_name'], unique=False)

    op.create_table('human_task_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['human_task.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id', 'seq', name='uq_human_task_event_seq')
    )
    with op.batch_alter_table('human_task_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_task_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_event_task_id'), ['task_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('human_task_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_human_task_event_task_id'))
        batch_op.drop_index(batch_op.f('ix_human_task_event_at'))

    op.drop_table('human_task_event')
    with op.batch_alter_table('human_task_candidate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_human_task_candidate_group_name'))

    op.drop_table('human_task_candidate')
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_human_task_workflow_id'))
        batch_op.drop_index(batch_op.f('ix_human_task_state'))
        batch_op.drop_index(batch_op.f('ix_human_task_reference'))
        batch_op.drop_index(batch_op.f('ix_human_task_process'))
        batch_op.drop_index(batch_op.f('ix_human_task_priority'))
        batch_op.drop_index(batch_op.f('ix_human_task_kind'))
        batch_op.drop_index(batch_op.f('ix_human_task_due_at'))
        batch_op.drop_index(batch_op.f('ix_human_task_dead_letter_id'))
        batch_op.drop_index(batch_op.f('ix_human_task_created_at'))
        batch_op.drop_index(batch_op.f('ix_human_task_assignee'))

    op.drop_table('human_task')
