#!/bin/sh
# ferry plan, apply of a light baseline (hostname, /etc/hosts block, sysctl, limits, cluster
# marker) and a second plan on N simulated hosts: test nodes with a network, mount and hostname
# namespace each on one bridge, a real sshd each, /etc, /var/lib and /run overlays
# (installer/tests/many_hosts.rs, scale_figures). ferry runs in the first node's network with
# a soft limit of 1024 open files, under /usr/bin/time for its peak RSS. Needs root.
# Usage: benches/scale/run.sh [HOSTS]   (default 500)
# FERRY_BIN=target/release/ferry measures a release build (default: cargo's test build).
set -eu
cd "$(dirname "$0")/../.."
hosts=${1:-500}
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  nproc: $(nproc)  cpu: $(lscpu | sed -n 's/^Model name: *//p')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)  hosts: $hosts  ferry: ${FERRY_BIN:-test build}"
FERRY_SCALE_HOSTS=$hosts cargo test --quiet -p ferry-installer --test many_hosts scale_figures \
    -- --ignored --nocapture --test-threads 1 2>&1 | grep -E '^(SCALE|[0-9]+ hosts up|apply |facts |hosts: |plan: )'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
