#!/usr/bin/env bash
# spout's benchmark: builds the release binary, then measures the Docker daemon, spout and Docker's
# gelf driver side by side and prints one Markdown table. See bench/README.md.
#   bench/run.sh            the full run (about ten minutes)
#   bench/run.sh --quick    tiny workloads, one run each: checks that the harness works
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p spout >&2
exec python3 bench/bench.py --spout target/release/spout "$@"
