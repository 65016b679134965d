"""invoices: global invoices, credit notes and cancellations (kind, doc_key, lines)"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.alter_column("charge_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("kind", sa.String(length=1), nullable=False, server_default="I")
        )
        batch_op.add_column(sa.Column("doc_key", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("related_uuid", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("periodicity", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("months", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("year", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("substitute_uuid", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("cancelled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_unique_constraint("uq_invoices_doc_key", ["doc_key"])
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("charge_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["charge_id"], ["charges.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("invoice_id", "charge_id"),
    )
    op.create_index(op.f("ix_invoice_lines_charge_id"), "invoice_lines", ["charge_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_invoice_lines_charge_id"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_invoices_doc_key", type_="unique")
        for name in (
            "cancelled_at",
            "substitute_uuid",
            "cancel_reason",
            "year",
            "months",
            "periodicity",
            "related_uuid",
            "doc_key",
            "kind",
        ):
            batch_op.drop_column(name)
        batch_op.alter_column("charge_id", existing_type=sa.Integer(), nullable=False)
