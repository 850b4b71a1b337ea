#!/bin/sh
# The wizard's frame time on the Hosts screen with 500 inventory hosts (still, scrolling,
# filtering; 80x24 and 120x40) and the cost of checking the draft after an edit, from the
# benchmark in installer/src/tui/bench.rs (cargo's test profile here is optimized).
# Usage: benches/tui/run.sh
set -eu
cd "$(dirname "$0")/../.."
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  cpu: $(lscpu | sed -n 's/^Model name: *//p')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --quiet -p ferry-installer --bin ferry tui::bench -- --ignored --nocapture --test-threads 1 2>&1 |
    grep -E '^(80x24|120x40|check of)'
