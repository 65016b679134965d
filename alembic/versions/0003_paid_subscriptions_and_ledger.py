"""paid subscriptions and ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
import sqlmodel

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mp_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('billing_day', sa.Integer(), nullable=False),
    sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('mp_plan_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('plan_id', 'billing_day', 'price', name='uq_mp_plans')
    )
    op.create_table('charges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('mp_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charges_mp_id'), ['mp_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_charges_subscription_id'), ['subscription_id'], unique=False)

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mp_preapproval_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('checkout_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('pending_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('start_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('first_charge', sa.Numeric(precision=12, scale=2), nullable=True))
        batch_op.add_column(sa.Column('paid_through', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('next_plan_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('past_due_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('blocked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_subscriptions_mp_preapproval_id'), ['mp_preapproval_id'], unique=False)
        batch_op.create_foreign_key('fk_subscriptions_next_plan_id', 'plans', ['next_plan_id'],
                                    ['id'])



def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_subscriptions_next_plan_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_subscriptions_mp_preapproval_id'))
        batch_op.drop_column('blocked_at')
        batch_op.drop_column('past_due_since')
        batch_op.drop_column('next_plan_id')
        batch_op.drop_column('cancel_at_period_end')
        batch_op.drop_column('paid_through')
        batch_op.drop_column('first_charge')
        batch_op.drop_column('start_date')
        batch_op.drop_column('pending_reason')
        batch_op.drop_column('checkout_url')
        batch_op.drop_column('mp_preapproval_id')

    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_charges_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_charges_mp_id'))

    op.drop_table('charges')
    op.drop_table('mp_plans')
