"""OTLP/gRPC receiver: the collector's ``TraceService``, ``MetricsService`` and ``LogsService`` ``Export`` on one port.

Served by grpcio on a bounded thread pool; each call takes the same path as OTLP/HTTP (``services.otlp_export``).
Keys come from the ``authorization`` ("Bearer <key>") or ``x-api-key`` metadata. Domain errors become the
``google.rpc.Code`` OTLP/HTTP puts in its Status body, with the ``google.rpc.Status`` in
``grpc-status-details-bin`` and, for retryable ones, a ``google.rpc.RetryInfo`` as the OTLP specification asks.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.api.deps import authenticate_key, key_from, request_id_of
from fernando_telemetry.api.errors import DATABASE_ERRORS, database_unavailable_on, rpc_code_for, status_for
from fernando_telemetry.core import otlp
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import FernandoTelemetryError, InvalidInput
from fernando_telemetry.core.keys import Scope
from fernando_telemetry.services import otlp_export
from fernando_telemetry.services.ingest import Ingestor

__all__ = ["RETRY_INFO_METADATA", "SERVICE_NAMES", "STATUS_DETAILS_METADATA", "OtlpGrpcReceiver"]

logger = logging.getLogger(__name__)

SERVICE_NAMES: dict[str, str] = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
}
"""The fully qualified gRPC service of each signal; each has one method, ``Export``."""

STATUS_DETAILS_METADATA = "grpc-status-details-bin"
"""Trailing metadata holding the serialized ``google.rpc.Status`` of a failed call (what grpc-status reads)."""
RETRY_INFO_METADATA = "google.rpc.retryinfo-bin"
"""Trailing metadata holding the ``google.rpc.RetryInfo`` alone: the OpenTelemetry Python exporter reads it there."""

_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class OtlpGrpcReceiver:
    """The OTLP/gRPC server: the port is bound on construction (a taken port fails before anything else starts),
    the services are added and served by ``start``, and ``stop`` lets calls in progress finish within a grace period.
    """

    def __init__(self, *, host: str, port: int, workers: int, max_concurrent_rpcs: int, max_message_bytes: int) -> None:
        self.host = host
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc")
        self._server = grpc.server(
            self._executor,
            maximum_concurrent_rpcs=max_concurrent_rpcs,
            options=[
                # the same cap as an HTTP body, measured after decompression (gRPC answers RESOURCE_EXHAUSTED past it)
                ("grpc.max_receive_message_length", max_message_bytes),
                # grpc turns SO_REUSEPORT on by default: a second server would then share a taken port silently
                ("grpc.so_reuseport", 0),
            ],
        )
        self.port = self._bind(host, port)
        self._started = False
        self._stopped = False

    def _bind(self, host: str, port: int) -> int:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # grpc says only "Failed to bind" (and logs its reason on stderr): a plain socket tells why, first
        failure = _bind_failure(host, port) if port else None
        if failure is None:
            try:
                return int(self._server.add_insecure_port(address))
            except RuntimeError:
                failure = _bind_failure(host, port) or f"cannot listen for OTLP/gRPC on {host}:{port}"
        self._executor.shutdown(wait=False)
        raise InvalidInput(failure)

    def start(self, *, sessions: sessionmaker[Session], ingestor: Ingestor) -> OtlpGrpcReceiver:
        """Serve the three services, authenticating keys with ``sessions`` and storing through ``ingestor``."""
        handlers = [
            grpc.method_handlers_generic_handler(
                SERVICE_NAMES[name], {"Export": _export_handler(otlp_export.SIGNALS[name], sessions, ingestor)}
            )
            for name in SERVICE_NAMES
        ]
        self._server.add_generic_rpc_handlers(handlers)
        self._server.start()
        self._started = True
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        """Refuse new calls, let those in progress finish for ``grace_s``, cancel the rest and release the port."""
        if self._stopped:
            return
        self._stopped = True
        if not self._started:
            # grpc releases a bound port only when a started server stops: a start that failed later (no database,
            # say) starts it with no services, so nothing is answered, and stops it at once
            self._server.start()
            grace_s = 0.0
        self._server.stop(grace_s).wait()
        # a cancelled call's thread may still wait for its commit: let it end before the writer stops
        self._executor.shutdown(wait=True)


def _bind_failure(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None when it can (as far as a plain socket can tell)."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does: TIME_WAIT is no obstacle
            probe.bind(sockaddr[:2])
    except socket.gaierror as exc:
        return f"cannot listen for OTLP/gRPC on {host}:{port}: unknown host ({exc.strerror})"
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"port {port} on {host} is already in use, so OTLP/gRPC cannot listen there: stop what uses it, "
                "pick another with --otlp-grpc-port, or turn the receiver off with --otlp-grpc-port 0"
            )
        return f"cannot listen for OTLP/gRPC on {host}:{port}: {exc.strerror or exc}"
    return None


def _export_handler(signal: otlp_export.Signal, sessions: sessionmaker[Session], ingestor: Ingestor) -> grpc.RpcMethodHandler:
    method = f"/{SERVICE_NAMES[signal.name]}/Export"

    def export(body: bytes, context: grpc.ServicerContext) -> Message:
        failure: FernandoTelemetryError
        try:
            metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
            principal = authenticate_key(
                sessions, key_from(metadata.get("authorization"), metadata.get("x-api-key")), Scope.INGEST
            )
            exported = otlp_export.export(
                ingestor, signal=signal, body=body, content_type=otlp.PROTOBUF,
                caller=Caller.for_key(principal, request_id=request_id_of(metadata.get("x-request-id"))),
                now_s=time.monotonic(),
            )  # fmt: skip
            return exported.response
        except FernandoTelemetryError as exc:
            failure = exc
        except DATABASE_ERRORS as exc:  # the key lookup or a user check met a database that is down
            failure = database_unavailable_on(exc, method)
        except DataError as exc:  # a value PostgreSQL refused came from the request: the caller can act on it
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None and str(exc.orig).strip() else "DataError"
            failure = InvalidInput(f"the database refused a value of this request: {reason}")
        except Exception:
            logger.exception("unexpected error on %s", method)
            _abort(context, code_pb2.INTERNAL, "an unexpected error occurred; it has been logged", retry_after_s=None)
        _abort(context, _code_of(failure), failure.message, retry_after_s=getattr(failure, "retry_after_s", None))

    # the request stays bytes here: otlp_export parses it, so a body that is not protobuf is INVALID_ARGUMENT
    # with a reason (grpc's own deserializer would answer INTERNAL)
    return grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=_serialize)


def _serialize(pb2_response: Message) -> bytes:
    return pb2_response.SerializeToString()


def _code_of(error: FernandoTelemetryError) -> int:
    return int(rpc_code_for(status_for(error)))


def _abort(context: grpc.ServicerContext, code: int, message: str, *, retry_after_s: int | None) -> NoReturn:
    """End the call with ``code``; a retryable one carries ``RetryInfo`` (the wait the HTTP answer's Retry-After gives)."""
    pb2_status = status_pb2.Status(code=code, message=message)
    trailing: list[tuple[str, Any]] = []
    if retry_after_s is not None:
        pb2_retry_info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after_s)))
        pb2_status.details.add().Pack(pb2_retry_info)
        trailing.append((RETRY_INFO_METADATA, pb2_retry_info.SerializeToString()))
    trailing.append((STATUS_DETAILS_METADATA, pb2_status.SerializeToString()))
    context.set_trailing_metadata(tuple(trailing))
    context.abort(_STATUS_CODES[code], message)
