"""Alembic revisions of the schema; run them through ``fernando_telemetry.services.schema``."""
