"""An in-process OTLP/HTTP (protobuf) receiver for the telemetry tests.

Written for ims_kit by its vendor research (notes/vendors/otlp_receiver.py): a stdlib
ThreadingHTTPServer on 127.0.0.1 that decodes what opentelemetry-exporter-otlp-proto-http
sends with opentelemetry-proto, as a collector would; no mock exporter.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ROUTES = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "trace_requests"),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, "metrics_requests"),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "logs_requests"),
}


def _any_value(v: Any) -> Any:
    """Convert an opentelemetry.proto.common.v1.AnyValue to a Python value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attributes_to_dict(attrs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in attrs}


class OTLPReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.trace_requests: list[ExportTraceServiceRequest] = []
        self.metrics_requests: list[ExportMetricsServiceRequest] = []
        self.logs_requests: list[ExportLogsServiceRequest] = []
        self.raw_requests: list[dict[str, Any]] = []  # path, headers, size, encoding
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                route = _ROUTES.get(self.path.split("?", 1)[0])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if route is None:
                    self._reply(404, b"", "text/plain")
                    return
                req_cls, resp_cls, bucket = route
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                    msg = req_cls()
                    if ctype == "application/json":
                        json_format.Parse(body.decode("utf-8"), msg)
                    else:
                        msg.ParseFromString(body)
                except Exception as exc:  # malformed payload -> 400, as a collector would
                    self._reply(400, str(exc).encode(), "text/plain")
                    return
                with receiver._cond:
                    getattr(receiver, bucket).append(msg)
                    receiver.raw_requests.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type"),
                            "content_encoding": encoding or None,
                            "user_agent": self.headers.get("User-Agent"),
                            "bytes": length,
                        }
                    )
                    receiver._cond.notify_all()
                self._reply(200, resp_cls().SerializeToString(), "application/x-protobuf")

            def _reply(self, code: int, payload: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- views ---------------------------------------------------------------------------------
    def spans(self) -> list[dict[str, Any]]:
        out = []
        with self._cond:
            reqs = list(self.trace_requests)
        for req in reqs:
            for rs in req.resource_spans:
                resource = attributes_to_dict(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            {
                                "name": s.name,
                                "kind": s.kind,  # 3 == SPAN_KIND_CLIENT
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "attributes": attributes_to_dict(s.attributes),
                                "status_code": s.status.code,  # 2 == STATUS_CODE_ERROR
                                "status_message": s.status.message,
                                "events": [
                                    {"name": e.name, "attributes": attributes_to_dict(e.attributes)}
                                    for e in s.events
                                ],
                                "scope": ss.scope.name,
                                "resource": resource,
                                "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
                            }
                        )
        return out

    def metrics(self) -> list[dict[str, Any]]:
        out = []
        with self._cond:
            reqs = list(self.metrics_requests)
        for req in reqs:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        points = []
                        if kind == "histogram":
                            for p in m.histogram.data_points:
                                points.append(
                                    {
                                        "attributes": attributes_to_dict(p.attributes),
                                        "count": p.count,
                                        "sum": p.sum,
                                        "explicit_bounds": list(p.explicit_bounds),
                                        "bucket_counts": list(p.bucket_counts),
                                    }
                                )
                        elif kind in ("sum", "gauge"):
                            for p in getattr(m, kind).data_points:
                                value = (
                                    p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                                )
                                points.append(
                                    {"attributes": attributes_to_dict(p.attributes), "value": value}
                                )
                        out.append(
                            {
                                "name": m.name,
                                "unit": m.unit,
                                "description": m.description,
                                "type": kind,
                                "points": points,
                            }
                        )
        return out

    def wait_for(self, predicate: Callable[[OTLPReceiver], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


if __name__ == "__main__":  # manual use: python otlp_receiver.py [port]
    import sys

    r = OTLPReceiver(port=int(sys.argv[1]) if len(sys.argv) > 1 else 4318).start()
    print("listening on", r.endpoint, "(Ctrl-C to stop)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        r.stop()
