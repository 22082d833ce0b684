"""The live demo behind ``fernando-telemetry demo``: a shop of four instrumented FastAPI services, simulated
shoppers, a few days of history, alert rules and a planned incident, around the real server.

Entry-point layer: it may import the SDK, the server's composition, services and storage.
"""

from fernando_telemetry.demo import history, hosting, incidents, monitor, rules, runner, shop, tenant, traffic
from fernando_telemetry.demo.history import HistorySize
from fernando_telemetry.demo.runner import DemoOptions, run

__all__ = [
    "DemoOptions",
    "HistorySize",
    "history",
    "hosting",
    "incidents",
    "monitor",
    "rules",
    "run",
    "runner",
    "shop",
    "tenant",
    "traffic",
]
