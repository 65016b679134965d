"""portal: distributor staff logins, server-side web sessions, password links, video grants"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"

_T = sqlmodel.sql.sqltypes.UTCDateTime


def _ref(column: str, table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    """A required reference to a row of `table`: the column and its foreign key."""
    return (
        sa.Column(column, sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint([column], [f"{table}.id"]),
    )


def _principal(*columns: sa.Column) -> tuple[sa.Column, ...]:
    """A secret's hash, whose it is (a customer or a staff member) and when it was
    made and expires: what a web session and a password link both are."""
    return (
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        *columns,
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("expires_at", _T(), nullable=False),
    )


def upgrade() -> None:
    op.create_table(
        "distributor_users",
        sa.Column("id", sa.Integer(), nullable=False),
        *_ref("distributor_id", "distributors"),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("locale", sa.String(length=5), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", _T(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_index(
        op.f("ix_distributor_users_distributor_id"), "distributor_users", ["distributor_id"]
    )
    op.create_table(
        "web_sessions",
        *_principal(sa.Column("csrf", sa.String(length=64), nullable=False)),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_web_sessions_principal_id"), "web_sessions", ["principal_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])
    op.create_table(
        "password_links",
        *_principal(),
        sa.Column("used_at", _T(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_password_links_principal_id"), "password_links", ["principal_id"])
    op.create_table(
        "video_grants",
        *_ref("customer_id", "customers"),
        sa.Column("granted_at", _T(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )


def downgrade() -> None:
    op.drop_table("video_grants")
    op.drop_index(op.f("ix_password_links_principal_id"), table_name="password_links")
    op.drop_table("password_links")
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_principal_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index(op.f("ix_distributor_users_distributor_id"), table_name="distributor_users")
    op.drop_table("distributor_users")
