#!/bin/sh
# License verifications per second on one core, against bare Ed25519 verification of the same
# file in the same run (the floor no license check can beat), and openssl's Ed25519 verify as an
# outside reference when openssl is installed. Usage: benches/license/run.sh [SECONDS_PER_CASE]
set -eu
cd "$(dirname "$0")/../.."
secs="${1:-3}"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  cpu: $(lscpu | sed -n 's/^Model name: *//p')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
# taskset pins the run to one core so the figure is per core.
FERRY_BENCH_SECS="$secs" taskset -c 0 cargo bench --quiet -p ferry-license --bench verify
if command -v openssl >/dev/null; then
    taskset -c 0 openssl speed -seconds "$secs" ed25519 2>/dev/null | grep -E 'Ed25519|verify/s' | tail -2
fi
