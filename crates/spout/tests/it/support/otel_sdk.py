"""A producer for the receive tests: Python's logging through the OpenTelemetry SDK, exported
over OTLP/HTTP (protobuf) by the project's own exporter.

    python3 otel_sdk.py ENDPOINT COUNT

logs `order N placed` COUNT times (info, with attributes), then `stock low` (warning) and
`payment failed` (error), and exits once everything is exported; non-zero if the export failed.
"""
import logging
import sys

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint, count = sys.argv[1], int(sys.argv[2])
provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "host.name": "sdk-host"}))


class Exporter(OTLPLogExporter):
    """Remembers whether any export failed, which the SDK only logs."""

    failed = False

    def export(self, batch):
        result = super().export(batch)
        if result.name != "SUCCESS":
            Exporter.failed = True
        return result


provider.add_log_record_processor(SimpleLogRecordProcessor(Exporter(endpoint=endpoint, timeout=10)))
log = logging.getLogger("shop")
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
log.setLevel(logging.DEBUG)
for i in range(1, count + 1):
    log.info("order %d placed", i, extra={"order.id": i, "customer": "ann"})
log.warning("stock low", extra={"sku": "A-1"})
log.error("payment failed")
provider.shutdown()
sys.exit(1 if Exporter.failed else 0)
