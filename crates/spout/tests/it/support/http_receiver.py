"""An HTTP receiver for the tests, on Python's own http.server (HTTP/1.1, kept-alive).

    python3 http_receiver.py PORT OUT [--fail CODE,CODE…] [--refuse TEXT]

Writes one JSON object a line to OUT for every request: its path, its headers and its body
(decompressed when Content-Encoding says gzip; an OTLP logs request in protobuf decoded by the
OpenTelemetry project's own opentelemetry-proto, as `otlp`, in its JSON mapping). Answers the
first requests with the CODEs, in turn (a 429 or 503 with Retry-After: 1), then 400 to a body
holding TEXT, and 202 to the rest;
to OTLP, 200 with an ExportLogsServiceResponse whose partial success rejects the records holding
TEXT.
"""

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("out")
parser.add_argument("--fail", default="")
parser.add_argument("--refuse", default=None)
args = parser.parse_args()

failures = [int(code) for code in args.fail.split(",") if code]
lock = threading.Lock()
seen = 0
out = open(args.out, "a", encoding="utf-8")


def otlp(body):
    """The request in OTLP's JSON mapping, and the answer: the records holding --refuse rejected."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as service

    request = service.ExportLogsServiceRequest()
    request.ParseFromString(body)
    answer = service.ExportLogsServiceResponse()
    if args.refuse is not None:
        rejected = sum(
            1
            for resource in request.resource_logs
            for scope in resource.scope_logs
            for log in scope.log_records
            if args.refuse in log.body.string_value
        )
        if rejected:
            answer.partial_success.rejected_log_records = rejected
            answer.partial_success.error_message = "refused by the test receiver"
    return MessageToDict(request), answer.SerializeToString()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        record = {"path": self.path, "headers": dict(self.headers.items())}
        answer = b""
        if self.headers.get("Content-Type") == "application/x-protobuf":
            record["otlp"], answer = otlp(body)
            code = 200
        else:
            text = body.decode("utf-8")
            record["body"] = text
            code = 400 if args.refuse is not None and args.refuse in text else 202
        with lock:
            seen += 1
            if seen <= len(failures):
                code, answer = failures[seen - 1], b""
            record["status"] = code
            out.write(json.dumps(record) + "\n")
            out.flush()
        self.send_response(code)
        if code in (429, 503):
            self.send_header("Retry-After", "1")
        if answer:
            self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
