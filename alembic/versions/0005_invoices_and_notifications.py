"""invoices, notifications outbox, customer fiscal data, silent recorders

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""
import sqlalchemy as sa
import sqlmodel

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_regime', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('cfdi_use', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('postal_code', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=5), nullable=True))
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('silent_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_table(
        'invoices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('charge_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('serie', sa.String(length=25), nullable=False),
        sa.Column('folio', sa.String(length=40), nullable=False),
        sa.Column('issued_on', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=True),
        sa.Column('issuer_rfc', sa.String(length=13), nullable=True),
        sa.Column('receiver_rfc', sa.String(length=13), nullable=True),
        sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('xml_key', sa.String(length=300), nullable=True),
        sa.Column('pdf_key', sa.String(length=300), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('stamped_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['charge_id'], ['charges.id'], name='fk_invoices_charge_id'),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name='fk_invoices_customer_id'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('charge_id'),
        sa.UniqueConstraint('uuid'),
    )
    op.create_index('ix_invoices_customer_id', 'invoices', ['customer_id'])
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=120), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name='fk_notifications_customer_id'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('ix_notifications_customer_id', 'notifications', ['customer_id'])
    op.create_index('ix_notifications_status', 'notifications', ['status'])
    op.create_table(
        'cursors',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('cursors')
    op.drop_index('ix_notifications_status', table_name='notifications')
    op.drop_index('ix_notifications_customer_id', table_name='notifications')
    op.drop_table('notifications')
    op.drop_index('ix_invoices_customer_id', table_name='invoices')
    op.drop_table('invoices')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('silent_since')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('locale')
        batch_op.drop_column('postal_code')
        batch_op.drop_column('cfdi_use')
        batch_op.drop_column('tax_regime')
