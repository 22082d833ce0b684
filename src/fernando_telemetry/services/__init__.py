"""Use cases, called through their module: ``retention.run(session, now=..., ...)``.

Services take the session first and the rest keyword-only, receive ``now`` as an argument, and never
commit: the caller owns the transaction. Imports storage, notify and core.
"""

from fernando_telemetry.services import health, partitions, retention, schema

__all__ = ["health", "partitions", "retention", "schema"]
