"""Network edge: FastAPI routers and the OTLP/gRPC receiver, which parse, authenticate, call one service and map
errors. Imports services and core."""

from fernando_telemetry.api.app import create_app

__all__ = ["create_app"]
