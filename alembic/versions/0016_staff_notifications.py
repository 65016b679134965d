"""notifications.staff_id: the outbox also emails distributor staff (their password links)

A notification goes to a customer (customer_id) or, for a staff member's
"forgot password" link, to that distributor user (staff_id); one of the two.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("customer_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("staff_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_notifications_staff_id", "distributor_users", ["staff_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_notifications_staff_id"), ["staff_id"])


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE customer_id IS NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_staff_id"))
        batch_op.drop_constraint("fk_notifications_staff_id", type_="foreignkey")
        batch_op.drop_column("staff_id")
        batch_op.alter_column("customer_id", existing_type=sa.Integer(), nullable=False)
