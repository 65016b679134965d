"""charges: the Checkout Pro preference a one-off charge is paid through

A pay-now or upgrade charge is paid at a Checkout Pro preference
(POST /checkout/preferences): its id, the link the payer opens and when the
link expires. Null for installments, which Mercado Pago charges by itself.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.add_column("charges", sa.Column("mp_preference_id", sa.String(length=80), nullable=True))
    op.add_column("charges", sa.Column("checkout_url", sa.String(length=500), nullable=True))
    op.add_column(
        "charges",
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("charges", "expires_at")
    op.drop_column("charges", "checkout_url")
    op.drop_column("charges", "mp_preference_id")
