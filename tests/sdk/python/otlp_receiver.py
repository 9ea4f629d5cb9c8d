"""An OTLP trace receiver for the tests, standing in for an OpenTelemetry collector: Outrigger's processes
export their spans to it (OUTRIGGER_OTLP_ENDPOINT), and a test waits until the spans it expects have arrived.
It takes OTLP/gRPC (the default), or OTLP/HTTP with protobuf bodies at `POST /v1/traces` (as a collector's
port 4318 does; any other path answers 404)."""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from dataclasses import dataclass, field
from typing import Callable

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

SPAN_KINDS = {
    trace_pb2.Span.SPAN_KIND_INTERNAL: 'internal',
    trace_pb2.Span.SPAN_KIND_SERVER: 'server',
    trace_pb2.Span.SPAN_KIND_CLIENT: 'client',
    trace_pb2.Span.SPAN_KIND_PRODUCER: 'producer',
    trace_pb2.Span.SPAN_KIND_CONSUMER: 'consumer',
}


@dataclass
class Span:
    """One received span, its ids in hex as a traceparent writes them."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object] = field(default_factory=dict)
    error: bool = False
    # Unix nanoseconds.
    start: int = 0
    end: int = 0


def _value(any_value) -> object:
    kind = any_value.WhichOneof('value')
    return getattr(any_value, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, protocol: str = 'grpc') -> None:
        """`protocol`: `grpc` or `http/protobuf`, as OUTRIGGER_OTLP_PROTOCOL names them."""
        self._spans: list[Span] = []
        self._arrived = threading.Condition()
        self._grpc = self._http = None
        if protocol == 'grpc':
            self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._grpc)
            port = self._grpc.add_insecure_port('127.0.0.1:0')
            self._grpc.start()
        else:
            self._http = ThreadingHTTPServer(('127.0.0.1', 0), _http_handler(self))
            port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.endpoint = f'http://127.0.0.1:{port}'

    def Export(self, request, context):  # noqa: N802 - the rpc's name
        received = []
        for resource_spans in request.resource_spans:
            resource = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(Span(
                        service=str(resource.get('service.name', '')),
                        name=span.name,
                        kind=SPAN_KINDS.get(span.kind, 'unspecified'),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={item.key: _value(item.value) for item in span.attributes},
                        error=span.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                        start=span.start_time_unix_nano,
                        end=span.end_time_unix_nano,
                    ))
        with self._arrived:
            self._spans.extend(received)
            self._arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self, predicate: Callable[[Span], bool] = lambda span: True) -> list[Span]:
        with self._arrived:
            return [span for span in self._spans if predicate(span)]

    def wait_for(self, predicate: Callable[[Span], bool], what: str, timeout: float = 20.0) -> Span:
        """The first span that satisfies `predicate`, once it has arrived; fails after `timeout` seconds."""
        def found():
            return next((span for span in self._spans if predicate(span)), None)

        with self._arrived:
            span = self._arrived.wait_for(found, timeout)
            if span is None:
                seen = '; '.join(f'{span.service} {span.name}' for span in self._spans[-20:]) or 'no span at all'
                raise AssertionError(f'{what} was not exported within {timeout} s; the last spans received: {seen}')
            return span

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


def _http_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    """OTLP/HTTP: an ExportTraceServiceRequest in protobuf, posted to /v1/traces."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
            if self.path != '/v1/traces' or self.headers.get('Content-Type') != 'application/x-protobuf':
                self.send_response(404)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            answer = receiver.Export(request, None).SerializeToString()
            self.send_response(200)
            self.send_header('Content-Type', 'application/x-protobuf')
            self.send_header('Content-Length', str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    return Handler
