"""A local OTLP/HTTP trace receiver for the tests, decoding with OpenTelemetry's own protobuf
classes (opentelemetry-proto from PyPI, pinned in requirements.txt).

Usage: receiver.py PORT
  POST /v1/traces  an ExportTraceServiceRequest (application/x-protobuf, gzip or not): each span
                   is kept; the answer is an empty ExportTraceServiceResponse.
  GET  /spans      every span so far, as JSON: trace_id, span_id, parent_span_id (hex; "" for a
                   root), name, kind, status ({code, message}), attributes, resource (attributes
                   of the resource the span came with), the raw request sizes.
  Anything it cannot decode answers 400 and is counted in GET /spans' "errors".
"""

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

LOCK = threading.Lock()
SPANS = []
ERRORS = []


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            if self.path != "/v1/traces":
                raise ValueError(f"unexpected path {self.path}")
            if self.headers.get("content-type") != "application/x-protobuf":
                raise ValueError(f"unexpected content-type {self.headers.get('content-type')}")
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            got = []
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        got.append(
                            {
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "name": s.name,
                                "kind": Span.SpanKind.Name(s.kind),
                                "status": {
                                    "code": Status.StatusCode.Name(s.status.code),
                                    "message": s.status.message,
                                },
                                "attributes": attributes(s.attributes),
                                "events": [e.name for e in s.events],
                                "resource": resource,
                                "scope": ss.scope.name,
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                            }
                        )
            with LOCK:
                SPANS.extend(got)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except Exception as e:  # noqa: BLE001 - every failure is the test's to see
            with LOCK:
                ERRORS.append(str(e))
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()

    def do_GET(self):
        with LOCK:
            text = json.dumps({"spans": SPANS, "errors": ERRORS}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
