"""Initial schema of the Computing Platform: Inventory, Grid Map, bundles and messages, events,
history, provisioning, publishing (generated from the models, checked by
tests/test_platform_migrations.py).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "bundles",
        sa.Column("bundle_id", sa.String(length=64), nullable=False),
        sa.Column("receiver_id", sa.String(length=64), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False, comment="the bundle as validated (canonical JSON)"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("arrival_utc", sa.DateTime(timezone=True), nullable=False, comment="best copy's time of chip 0"),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("crc_ok", sa.Boolean(), nullable=False),
        sa.Column("hub_id", sa.BigInteger(), nullable=True),
        sa.Column("counter", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False, comment="accepted | duplicate | rejected | no_frame"),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("best_snr_db", sa.Float(), nullable=True),
        sa.Column("inferred_bus", sa.Integer(), nullable=True),
        sa.Column("inferred_feeder", sa.Integer(), nullable=True),
        sa.Column("inferred_phase", sa.String(length=1), nullable=True),
        sa.Column("inferred_confidence", sa.Float(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=False, comment="the answer given, repeated verbatim on a re-post"),
        sa.PrimaryKeyConstraint("bundle_id", name=op.f("pk_bundles")),
    )
    with op.batch_alter_table("bundles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bundles_hub_id"), ["hub_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bundles_received_at"), ["received_at"], unique=False)
        batch_op.create_index("ix_bundles_sub_arrival", ["substation_id", "arrival_utc"], unique=False)
        batch_op.create_index("ix_bundles_sub_chan_code", ["substation_id", "channel", "code"], unique=False)

    op.create_table(
        "event_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_event_log")),
    )
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_log_event_id"), ["event_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=True, comment="what the event is about, for updates"),
        sa.Column("subject_type", sa.String(length=24), nullable=True),
        sa.Column("subject_id", sa.String(length=96), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False, comment="bundle ids"),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True, comment="data time of the first evidence"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False, comment="has reached report_threshold once"),
        sa.Column("origin_substation", sa.String(length=64), nullable=True),
        sa.Column("origin_event_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_key_status", ["key", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_substation_id"), ["substation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_type"), ["type"], unique=False)

    op.create_table(
        "feeders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("bus", sa.Integer(), nullable=False),
        sa.Column("feeder", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeders")),
        sa.UniqueConstraint("substation_id", "feeder", name=op.f("uq_feeders_substation_id_feeder")),
    )
    with op.batch_alter_table("feeders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feeders_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("entity", sa.String(length=24), nullable=False),
        sa.Column("entity_id", sa.String(length=96), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.Column("cause", sa.String(length=24), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False, comment="bundle ids, or import:<id>, event:<id>, operator"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
    )
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.create_index("ix_history_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "hub_policies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hub_id", sa.BigInteger(), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("slot_offset", sa.Integer(), nullable=False, comment="first slot within each report period"),
        sa.Column("slots_per_report", sa.Integer(), nullable=False, comment="consecutive slots: one per segment"),
        sa.Column("period_slots", sa.Integer(), nullable=False),
        sa.Column("reports_per_day", sa.Float(), nullable=False),
        sa.Column("modulation", sa.String(length=8), nullable=False),
        sa.Column("fec", sa.String(length=4), nullable=False),
        sa.Column("alt_channel", sa.Integer(), nullable=True, comment="odd-numbered reports go here (rotation)"),
        sa.Column("alt_slot_offset", sa.Integer(), nullable=True),
        sa.Column("activation_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activation_slot", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_policies")),
        sa.UniqueConstraint("hub_id", "version", name=op.f("uq_hub_policies_hub_id_version")),
    )
    with op.batch_alter_table("hub_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hub_policies_hub_id"), ["hub_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hub_policies_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "hubs",
        sa.Column("hub_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("key_hex", sa.String(length=32), nullable=True, comment="AES-128 key (not forwarded)"),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("own_meter_id", sa.BigInteger(), nullable=True),
        sa.Column("transformer_id", sa.String(length=64), nullable=True),
        sa.Column("section_id", sa.String(length=96), nullable=True),
        sa.Column("map_bus", sa.Integer(), nullable=True),
        sa.Column("map_feeder", sa.Integer(), nullable=True),
        sa.Column("map_phase", sa.String(length=1), nullable=True),
        sa.Column("map_source", sa.String(length=16), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("hw_version", sa.Integer(), nullable=True),
        sa.Column("fw_version", sa.Integer(), nullable=True),
        sa.Column("capabilities", sa.Integer(), nullable=True),
        sa.Column("provision_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_counter", sa.Integer(), nullable=True),
        sa.Column("last_bundle_id", sa.String(length=64), nullable=True),
        sa.Column("heard_substation", sa.String(length=64), nullable=True),
        sa.Column("heard_bus", sa.Integer(), nullable=True),
        sa.Column("heard_feeder", sa.Integer(), nullable=True),
        sa.Column("heard_phase", sa.String(length=1), nullable=True),
        sa.Column("heard_confidence", sa.Float(), nullable=True),
        sa.Column(
            "last_confirmed_at", sa.DateTime(timezone=True), nullable=True, comment="last heard where the map says"
        ),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report_slot", sa.BigInteger(), nullable=True),
        sa.Column("cand_substation", sa.String(length=64), nullable=True),
        sa.Column("cand_bus", sa.Integer(), nullable=True),
        sa.Column("cand_feeder", sa.Integer(), nullable=True),
        sa.Column("cand_phase", sa.String(length=1), nullable=True),
        sa.Column("cand_confidence", sa.Float(), nullable=True),
        sa.Column("cand_observations", sa.Integer(), nullable=False),
        sa.Column("cand_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cand_evidence", sa.JSON(), nullable=True),
        sa.Column("cand_event_id", sa.Integer(), nullable=True),
        sa.Column("tan_version", sa.Integer(), nullable=False, comment="bumped when TAN membership changes"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hub_id", name=op.f("pk_hubs")),
    )
    with op.batch_alter_table("hubs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hubs_section_id"), ["section_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hubs_substation_id"), ["substation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hubs_transformer_id"), ["transformer_id"], unique=False)

    op.create_table(
        "imports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("format", sa.String(length=24), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hub_id", sa.BigInteger(), nullable=False),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.Column("seg_index", sa.Integer(), nullable=False),
        sa.Column("seg_count", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("frame_hex", sa.String(length=64), nullable=False),
        sa.Column("bundle_id", sa.String(length=64), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("arrival_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("bus", sa.Integer(), nullable=True),
        sa.Column("feeder", sa.Integer(), nullable=True),
        sa.Column("phase", sa.String(length=1), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("receptions", sa.Integer(), nullable=False, comment="identical copies received (alert repeats)"),
        sa.Column("late", sa.Boolean(), nullable=False, comment="accepted inside the replay window"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("hub_id", "counter", name=op.f("uq_messages_hub_id_counter")),
    )
    op.create_table(
        "meters",
        sa.Column("meter_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("hub_id", sa.BigInteger(), nullable=True),
        sa.Column("tan_index", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("paired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unpaired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unpair_reason", sa.String(length=32), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_v_rms", sa.Float(), nullable=True),
        sa.Column("last_i_rms", sa.Float(), nullable=True),
        sa.Column("last_power_factor", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_meters")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index("ix_meters_hub_tan", ["hub_id", "tan_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("item_type", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "id"], unique=False)

    op.create_table(
        "plan_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("reports_per_day", sa.Float(), nullable=False),
        sa.Column("activation_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activation_slot", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
    )
    with op.batch_alter_table("plan_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_versions_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("hub_id", sa.BigInteger(), nullable=False),
        sa.Column("meter_id", sa.BigInteger(), nullable=True),
        sa.Column("tan_index", sa.Integer(), nullable=False),
        sa.Column("measurement_time_s", sa.BigInteger(), nullable=False),
        sa.Column("v_rms", sa.Float(), nullable=False),
        sa.Column("i_rms", sa.Float(), nullable=False),
        sa.Column("power_factor", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
    )
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.create_index("ix_readings_hub_time", ["hub_id", "measurement_time_s"], unique=False)
        batch_op.create_index(batch_op.f("ix_readings_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "received_forwards",
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin", "item_id", name=op.f("pk_received_forwards")),
    )
    op.create_table(
        "receivers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receivers")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_receivers_token_sha256")),
    )
    with op.batch_alter_table("receivers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_receivers_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "rejections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("bundle_id", sa.String(length=64), nullable=False),
        sa.Column("receiver_id", sa.String(length=64), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("hub_id", sa.BigInteger(), nullable=True),
        sa.Column("counter", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejections")),
    )
    with op.batch_alter_table("rejections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejections_bundle_id"), ["bundle_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rejections_hub_id"), ["hub_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rejections_reason"), ["reason"], unique=False)

    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("hub_id", sa.BigInteger(), nullable=False),
        sa.Column("first_counter", sa.Integer(), nullable=False),
        sa.Column("seg_count", sa.Integer(), nullable=False),
        sa.Column("received_mask", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("measurement_time_s", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("readings", sa.JSON(), nullable=False),
        sa.Column("first_arrival_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("hub_id", "first_counter", name=op.f("uq_reports_hub_id_first_counter")),
    )
    op.create_table(
        "sections",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=False),
        sa.Column("normal_feeder", sa.Integer(), nullable=False),
        sa.Column("lateral_no", sa.Integer(), nullable=False),
        sa.Column("bus", sa.Integer(), nullable=False),
        sa.Column("feeder", sa.Integer(), nullable=False, comment="feeder currently supplying the section"),
        sa.Column("energized", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sections")),
    )
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sections_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "settings_kv",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings_kv")),
    )
    op.create_table(
        "substations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_substations")),
    )
    op.create_table(
        "transformers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("substation_id", sa.String(length=64), nullable=True),
        sa.Column("section_id", sa.String(length=96), nullable=True),
        sa.Column("bus", sa.Integer(), nullable=True),
        sa.Column("feeder", sa.Integer(), nullable=True),
        sa.Column("phases", sa.String(length=3), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transformers")),
    )
    with op.batch_alter_table("transformers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transformers_section_id"), ["section_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transformers_substation_id"), ["substation_id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_webhook_id"), ["webhook_id"], unique=False)

    op.create_table(
        "webhooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("min_confidence", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("webhooks")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_webhook_id"))
        batch_op.drop_index("ix_webhook_deliveries_due")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("transformers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transformers_substation_id"))
        batch_op.drop_index(batch_op.f("ix_transformers_section_id"))

    op.drop_table("transformers")
    op.drop_table("substations")
    op.drop_table("settings_kv")
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sections_substation_id"))

    op.drop_table("sections")
    op.drop_table("reports")
    with op.batch_alter_table("rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejections_reason"))
        batch_op.drop_index(batch_op.f("ix_rejections_hub_id"))
        batch_op.drop_index(batch_op.f("ix_rejections_bundle_id"))

    op.drop_table("rejections")
    with op.batch_alter_table("receivers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_receivers_substation_id"))

    op.drop_table("receivers")
    op.drop_table("received_forwards")
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_readings_meter_id"))
        batch_op.drop_index("ix_readings_hub_time")

    op.drop_table("readings")
    with op.batch_alter_table("plan_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_versions_substation_id"))

    op.drop_table("plan_versions")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meters_substation_id"))
        batch_op.drop_index("ix_meters_hub_tan")

    op.drop_table("meters")
    op.drop_table("messages")
    op.drop_table("imports")
    with op.batch_alter_table("hubs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hubs_transformer_id"))
        batch_op.drop_index(batch_op.f("ix_hubs_substation_id"))
        batch_op.drop_index(batch_op.f("ix_hubs_section_id"))

    op.drop_table("hubs")
    with op.batch_alter_table("hub_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_policies_substation_id"))
        batch_op.drop_index(batch_op.f("ix_hub_policies_hub_id"))

    op.drop_table("hub_policies")
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.drop_index("ix_history_entity")

    op.drop_table("history")
    with op.batch_alter_table("feeders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feeders_substation_id"))

    op.drop_table("feeders")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_type"))
        batch_op.drop_index(batch_op.f("ix_events_substation_id"))
        batch_op.drop_index(batch_op.f("ix_events_status"))
        batch_op.drop_index("ix_events_key_status")

    op.drop_table("events")
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_log_event_id"))

    op.drop_table("event_log")
    with op.batch_alter_table("bundles", schema=None) as batch_op:
        batch_op.drop_index("ix_bundles_sub_chan_code")
        batch_op.drop_index("ix_bundles_sub_arrival")
        batch_op.drop_index(batch_op.f("ix_bundles_received_at"))
        batch_op.drop_index(batch_op.f("ix_bundles_hub_id"))

    op.drop_table("bundles")
