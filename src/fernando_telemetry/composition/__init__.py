"""The composition root: where the server process is put together from the layers below.

Settings become an engine, an ingestor and notifiers (``wiring``, ``notification_wiring``, ``runtime``); the
background jobs and their scheduler (``jobs``, ``scheduler``); the HTTP server that runs the app and the
scheduler in one process (``server``, ``http_server``); and the in-process exporter host apps embed
(``embedding``, re-exported as ``fernando_telemetry.embedding``). It may import every layer (api, services,
storage, notify, core, sdk, settings); no layer imports it back except the entry points (cli, console, demo).
"""

from __future__ import annotations

__all__: list[str] = []
