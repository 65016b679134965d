"""recordings: Dahua file names parsed at commit time; devices.timezone"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    op.add_column("devices", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "recordings",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("drive_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("is_snapshot", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["drive_id"], ["drives.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["drive_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_index("ix_recordings_day", "recordings", ["drive_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_recordings_day", table_name="recordings")
    op.drop_table("recordings")
    op.drop_column("devices", "timezone")
