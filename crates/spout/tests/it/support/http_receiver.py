"""An HTTP receiver for the tests, on Python's own http.server (HTTP/1.1, kept-alive).

    python3 http_receiver.py PORT OUT [--fail-first N] [--refuse TEXT]

Writes one JSON object a line to OUT for every request: its path, its headers and its body
(decompressed when Content-Encoding says gzip). Answers 503 with Retry-After: 1 to the first N
requests, 400 to a body holding TEXT, and 202 to the rest.
"""

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("out")
parser.add_argument("--fail-first", type=int, default=0)
parser.add_argument("--refuse", default=None)
args = parser.parse_args()

lock = threading.Lock()
seen = 0
out = open(args.out, "a", encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        text = body.decode("utf-8")
        with lock:
            seen += 1
            if seen <= args.fail_first:
                code = 503
            elif args.refuse is not None and args.refuse in text:
                code = 400
            else:
                code = 202
            record = {"path": self.path, "headers": dict(self.headers.items()), "body": text, "status": code}
            out.write(json.dumps(record) + "\n")
            out.flush()
        self.send_response(code)
        if code == 503:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
