"""recordings: Dahua file names parsed at commit time; devices.timezone"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"

#: a recording's columns, every one required: what a Dahua file name says
_COLUMNS = {
    "entry_id": sa.Integer(),
    "drive_id": sa.Integer(),
    "channel": sa.Integer(),
    "kind": sa.String(length=1),
    "starts_at": sa.DateTime(),
    "ends_at": sa.DateTime(),
    "is_snapshot": sa.Boolean(),
}.items()


def upgrade() -> None:
    op.add_column("devices", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.create_table(
        "recordings",
        *(sa.Column(name, kind, nullable=False) for name, kind in _COLUMNS),
        sa.ForeignKeyConstraint(["drive_id"], ["drives.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["drive_entries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_index("ix_recordings_day", "recordings", ["drive_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_recordings_day", table_name="recordings")
    op.drop_table("recordings")
    op.drop_column("devices", "timezone")
