"""ERP integration: API keys, products and wholesale prices, contracts and their
billed spans, idempotent replies, callback endpoints and their outbox

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""
import sqlalchemy as sa
import sqlmodel

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('distributor_id', sa.Integer(), nullable=False),
        sa.Column('key_id', sa.String(length=40), nullable=False),
        sa.Column('secret_hash', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('revoked_at', UTC(), nullable=True),
        sa.ForeignKeyConstraint(['distributor_id'], ['distributors.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_id'),
    )
    op.create_index('ix_api_keys_distributor_id', 'api_keys', ['distributor_id'])
    op.create_table(
        'distributor_plans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('distributor_id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('wholesale_price', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['distributor_id'], ['distributors.id']),
        sa.ForeignKeyConstraint(['plan_id'], ['plans.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('distributor_id', 'plan_id', name='uq_distributor_plans'),
    )
    op.create_index('ix_distributor_plans_distributor_id', 'distributor_plans',
                    ['distributor_id'])
    op.create_table(
        'contracts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('distributor_id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', sa.Integer(), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('cancelled_at', UTC(), nullable=True),
        sa.Column('delete_on', sa.Date(), nullable=True),
        sa.Column('next_plan_on', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['distributor_id'], ['distributors.id']),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id']),
        sa.ForeignKeyConstraint(['device_id'], ['devices.id']),
        sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_id'),
        sa.UniqueConstraint('distributor_id', 'external_id', name='uq_contracts_external'),
    )
    op.create_index('ix_contracts_customer_id', 'contracts', ['customer_id'])
    op.create_table(
        'contract_spans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('contract_id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('start_on', sa.Date(), nullable=False),
        sa.Column('end_on', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['contract_id'], ['contracts.id']),
        sa.ForeignKeyConstraint(['plan_id'], ['plans.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_contract_spans_contract_id', 'contract_spans', ['contract_id'])
    op.create_table(
        'idempotent_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('distributor_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['distributor_id'], ['distributors.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('distributor_id', 'key', name='uq_idempotent_replies'),
    )
    op.create_index('ix_idempotent_replies_created_at', 'idempotent_replies', ['created_at'])
    op.create_table(
        'callback_endpoints',
        sa.Column('distributor_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('secret', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.ForeignKeyConstraint(['distributor_id'], ['distributors.id']),
        sa.PrimaryKeyConstraint('distributor_id'),
    )
    op.create_table(
        'callback_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('distributor_id', sa.Integer(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=160), nullable=False),
        sa.Column('event', sa.String(length=40), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTC(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('sent_at', UTC(), nullable=True),
        sa.ForeignKeyConstraint(['distributor_id'], ['distributors.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('ix_callback_events_distributor_id', 'callback_events', ['distributor_id'])
    op.create_index('ix_callback_events_status', 'callback_events', ['status'])


def downgrade() -> None:
    for table in ('callback_events', 'callback_endpoints', 'idempotent_replies',
                  'contract_spans', 'contracts', 'distributor_plans', 'api_keys'):
        op.drop_table(table)
