"""charges.payment_type_id: how the approved payment was paid (CFDI FormaPago)

Mercado Pago's payment_type_id of the approved payment (credit_card,
debit_card, account_money, ...); invoicing maps it to c_FormaPago
(billing/invoicing/catalogs.py). Null until the payments side records it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.add_column("charges", sa.Column("payment_type_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("charges", "payment_type_id")
