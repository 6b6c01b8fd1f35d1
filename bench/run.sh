#!/usr/bin/env bash
# spout's benchmark: builds the release binary, then measures the Docker daemon, spout and Docker's
# gelf driver side by side and prints one Markdown table. See bench/README.md.
#   bench/run.sh                 the full run (about 20 minutes; 25 with --fluent-bit)
#   bench/run.sh --quick         tiny workloads, one run each: checks that the harness works
#   bench/run.sh --only W1,W5    some workloads (W1 ROT DRIVER W2 W3 W4 W5 STEADY)
#   bench/run.sh --fluent-bit BIN --fluent-bit-parsers FILE   Fluent Bit beside spout on the files
# SPOUT_BIN=path uses that binary instead of building one (CI checks the harness with the debug
# build it already has).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SPOUT_BIN:-}" ]; then
    cargo build --release --locked -p spout >&2
    SPOUT_BIN=target/release/spout
fi
exec python3 bench/bench.py --spout "$SPOUT_BIN" "$@"
