#!/usr/bin/env bash
# The cost per line of a container with ten extra fields against one with none, from frame to
# GELF JSON (criterion, crates/spout/benches/lines.rs), as one ratio measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p spout --bench lines -- per_line
python3 - <<'PY'
import json
def mean(name):
    with open(f"target/criterion/per_line/{name}/new/estimates.json") as f:
        return json.load(f)["mean"]["point_estimate"]
none, ten = mean("no_extra_fields"), mean("ten_extra_fields")
print(f"per line: {none / 1000:.0f} ns without extra fields, {ten / 1000:.0f} ns with ten; ratio {ten / none:.3f}")
PY
