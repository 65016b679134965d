"""ERP integration: API keys, products and wholesale prices, contracts and their
billed spans, idempotent replies, callback endpoints and their outbox
"""
import sqlalchemy as sa
import sqlmodel

from alembic import op

revision = '0008'
down_revision = '0007'

UTC = sqlmodel.sql.sqltypes.UTCDateTime


def _id() -> sa.Column:
    return sa.Column('id', sa.Integer(), nullable=False)


def _ref(column: str, table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    """A required reference to a row of `table`: the column and its foreign key."""
    return (sa.Column(column, sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint([column], [f'{table}.id']))


def _owned() -> tuple[sa.Column | sa.ForeignKeyConstraint, ...]:
    """The id of a row a distributor owns, and the reference to the distributor."""
    return (_id(), *_ref('distributor_id', 'distributors'))


def _price(column: str) -> tuple[sa.Column, sa.Column]:
    """A monthly price and its currency."""
    return (sa.Column(column, sa.Numeric(precision=12, scale=2), nullable=False),
            sa.Column('currency', sa.String(length=3), nullable=False))


def upgrade() -> None:
    op.create_table(
        'api_keys',
        *_owned(),
        sa.Column('key_id', sa.String(length=40), nullable=False),
        sa.Column('secret_hash', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('revoked_at', UTC(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_id'),
    )
    op.create_index('ix_api_keys_distributor_id', 'api_keys', ['distributor_id'])
    op.create_table(
        'distributor_plans',
        *_owned(),
        *_ref('plan_id', 'plans'),
        *_price('wholesale_price'),
        sa.Column('created_at', UTC(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('distributor_id', 'plan_id', name='uq_distributor_plans'),
    )
    op.create_index('ix_distributor_plans_distributor_id', 'distributor_plans',
                    ['distributor_id'])
    op.create_table(
        'contracts',
        *_owned(),
        sa.Column('external_id', sa.String(length=64), nullable=False),
        *_ref('customer_id', 'customers'),
        *_ref('device_id', 'devices'),
        *_ref('subscription_id', 'subscriptions'),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('cancelled_at', UTC(), nullable=True),
        sa.Column('delete_on', sa.Date(), nullable=True),
        sa.Column('next_plan_on', sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_id'),
        sa.UniqueConstraint('distributor_id', 'external_id', name='uq_contracts_external'),
    )
    op.create_index('ix_contracts_customer_id', 'contracts', ['customer_id'])
    op.create_table(
        'contract_spans',
        _id(),
        *_ref('contract_id', 'contracts'),
        *_ref('plan_id', 'plans'),
        *_price('price'),
        sa.Column('start_on', sa.Date(), nullable=False),
        sa.Column('end_on', sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_contract_spans_contract_id', 'contract_spans', ['contract_id'])
    op.create_table(
        'idempotent_replies',
        *_owned(),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('distributor_id', 'key', name='uq_idempotent_replies'),
    )
    op.create_index('ix_idempotent_replies_created_at', 'idempotent_replies', ['created_at'])
    op.create_table(
        'callback_endpoints',
        *_ref('distributor_id', 'distributors'),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('secret', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTC(), nullable=False),
        sa.PrimaryKeyConstraint('distributor_id'),
    )
    op.create_table(
        'callback_events',
        *_owned(),
        sa.Column('dedupe_key', sa.String(length=160), nullable=False),
        sa.Column('event', sa.String(length=40), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTC(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', UTC(), nullable=False),
        sa.Column('sent_at', UTC(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('ix_callback_events_distributor_id', 'callback_events', ['distributor_id'])
    op.create_index('ix_callback_events_status', 'callback_events', ['status'])


def downgrade() -> None:
    for table in ('callback_events', 'callback_endpoints', 'idempotent_replies',
                  'contract_spans', 'contracts', 'distributor_plans', 'api_keys'):
        op.drop_table(table)
