"""Theft analysis on the platform (issue [5/6]): AMI interval readings, work orders, theft findings;
meter account, address and service length; transformer topology (generated from the models,
checked by tests/test_platform_migrations.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "ami_readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("meter_id", sa.BigInteger(), nullable=False),
        sa.Column("measurement_time_s", sa.BigInteger(), nullable=False, comment="end of the interval, Unix seconds"),
        sa.Column("v_rms", sa.Float(), nullable=False),
        sa.Column("i_rms", sa.Float(), nullable=False),
        sa.Column("power_factor", sa.Float(), nullable=False, comment="signed: negative exports active power"),
        sa.Column("import_id", sa.Integer(), nullable=False, comment="the import (imports.id) that last wrote it"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ami_readings")),
        sa.UniqueConstraint("meter_id", "measurement_time_s", name=op.f("uq_ami_readings_meter_id_measurement_time_s")),
    )
    with op.batch_alter_table("ami_readings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ami_readings_import_id"), ["import_id"], unique=False)

    op.create_table(
        "theft_findings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="alert | suppressed"),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=40), nullable=False),
        sa.Column("analysis", sa.String(length=8), nullable=False, comment="radial | bus | feeder"),
        sa.Column("transformer_id", sa.String(length=64), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("meter_ids", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("unaccounted_kw", sa.Float(), nullable=False),
        sa.Column("detected_time_s", sa.BigInteger(), nullable=False),
        sa.Column("start_time_s", sa.BigInteger(), nullable=True),
        sa.Column("alert", sa.JSON(), nullable=False, comment="what the theft_alert event carries"),
        sa.Column("work_order_ids", sa.JSON(), nullable=False, comment="the orders explaining it (suppressed)"),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_theft_findings")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_theft_findings_alert_id")),
    )
    with op.batch_alter_table("theft_findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_theft_findings_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_theft_findings_transformer_id"), ["transformer_id"], unique=False)

    op.create_table(
        "work_orders",
        sa.Column("id", sa.String(length=64), nullable=False, comment="the utility's order id"),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("meter_ids", sa.JSON(), nullable=False),
        sa.Column("transformer_ids", sa.JSON(), nullable=False),
        sa.Column("explains", sa.JSON(), nullable=True, comment="anomaly types it explains (null: the kind's)"),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False, comment="active | cancelled"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.create_index("ix_work_orders_window", ["start_at", "end_at"], unique=False)

    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("account", sa.String(length=64), nullable=True, comment="customer account (theft alerts)")
        )
        batch_op.add_column(
            sa.Column("address", sa.String(length=200), nullable=True, comment="premise address (theft alerts)")
        )
        batch_op.add_column(
            sa.Column("service_length_m", sa.Float(), nullable=True, comment="service line length (theft analysis)")
        )

    with op.batch_alter_table("transformers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "topology",
                sa.String(length=8),
                nullable=True,
                comment="radial | bus | feeder (theft analysis; null: radial)",
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("transformers", schema=None) as batch_op:
        batch_op.drop_column("topology")

    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_column("service_length_m")
        batch_op.drop_column("address")
        batch_op.drop_column("account")

    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_work_orders_window")

    op.drop_table("work_orders")
    with op.batch_alter_table("theft_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_theft_findings_transformer_id"))
        batch_op.drop_index(batch_op.f("ix_theft_findings_status"))

    op.drop_table("theft_findings")
    with op.batch_alter_table("ami_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ami_readings_import_id"))

    op.drop_table("ami_readings")
