"""``/docs``: the API's swagger-ui page, drawn by the swagger-ui files installed with the package (served from
``/ui/static``), under the dashboard's security headers. No CDN, no inline script. Imports nothing of the project.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["DOCS_HTML", "router"]

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Fernando Telemetry API</title>
<link rel="icon" href="/ui/static/favicon.svg">
<link rel="stylesheet" href="/ui/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/ui/static/swagger-ui-bundle.js"></script>
<script src="/ui/static/docs.js"></script>
</body>
</html>
"""

router = APIRouter()


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_HTML)
