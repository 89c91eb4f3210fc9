"""Anti-replay window and key life cycle (docs/air-interface.md section 13): per hub a key epoch,
the next key, the previous key with its grace, and each epoch's 64-counter window (highest counter
and bitmap); messages and reports carry the key epoch they verified under, so counters start again
at 0 under a new key (checked against the models by tests/test_platform_migrations.py).

Existing rows are epoch 0; an existing hub's window starts with its highest counter alone (the
bitmap of the counters below it was never kept); ingest checks a counter whose bit is clear
against the stored messages too, so one accepted before the upgrade is not accepted twice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("hubs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_epoch", sa.Integer(), server_default="0", nullable=False, comment="epoch of key_hex")
        )
        batch_op.add_column(
            sa.Column("next_key_hex", sa.String(length=32), nullable=True, comment="installed, not yet used by the hub")
        )
        batch_op.add_column(
            sa.Column("prev_key_hex", sa.String(length=32), nullable=True, comment="the key before key_hex (grace)")
        )
        batch_op.add_column(
            sa.Column(
                "prev_key_until", sa.DateTime(timezone=True), nullable=True, comment="end of the previous key's grace"
            )
        )
        batch_op.add_column(
            sa.Column("prev_last_counter", sa.Integer(), nullable=True, comment="window of the previous epoch")
        )
        batch_op.add_column(sa.Column("prev_replay_bitmap", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("retired_keys", sa.JSON(), nullable=True, comment="SHA-256 of keys the hub used before")
        )
        batch_op.add_column(
            sa.Column(
                "replay_bitmap",
                sa.BigInteger(),
                server_default="0",
                nullable=False,
                comment="bit i: counter last_counter - i accepted",
            )
        )
        batch_op.alter_column(
            "last_counter",
            existing_type=sa.Integer(),
            comment="highest accepted counter of this epoch",
            existing_nullable=True,
        )
    # an existing hub's window: its highest counter is accepted
    op.execute("UPDATE hubs SET replay_bitmap = 1 WHERE last_counter IS NOT NULL")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "key_epoch", sa.Integer(), server_default="0", nullable=False, comment="the key it verified under"
            )
        )
        batch_op.drop_constraint("uq_messages_hub_id_counter", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_messages_hub_id_key_epoch_counter"), ["hub_id", "key_epoch", "counter"]
        )

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_epoch", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_reports_hub_id_first_counter", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_reports_hub_id_key_epoch_first_counter"), ["hub_id", "key_epoch", "first_counter"]
        )


def downgrade() -> None:
    """Downgrade schema (rows of epochs above 0 would collide: only epoch 0 is kept)."""
    op.execute("DELETE FROM messages WHERE key_epoch <> 0")
    op.execute("DELETE FROM reports WHERE key_epoch <> 0")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_reports_hub_id_key_epoch_first_counter"), type_="unique")
        batch_op.create_unique_constraint("uq_reports_hub_id_first_counter", ["hub_id", "first_counter"])
        batch_op.drop_column("key_epoch")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_messages_hub_id_key_epoch_counter"), type_="unique")
        batch_op.create_unique_constraint("uq_messages_hub_id_counter", ["hub_id", "counter"])
        batch_op.drop_column("key_epoch")

    with op.batch_alter_table("hubs", schema=None) as batch_op:
        batch_op.alter_column(
            "last_counter",
            existing_type=sa.Integer(),
            comment=None,
            existing_comment="highest accepted counter of this epoch",
            existing_nullable=True,
        )
        batch_op.drop_column("replay_bitmap")
        batch_op.drop_column("retired_keys")
        batch_op.drop_column("prev_replay_bitmap")
        batch_op.drop_column("prev_last_counter")
        batch_op.drop_column("prev_key_until")
        batch_op.drop_column("prev_key_hex")
        batch_op.drop_column("next_key_hex")
        batch_op.drop_column("key_epoch")
