#!/usr/bin/env bash
# Relay benchmark: 1 GiB to 16 hosts (sshd in network namespaces on one switch) over a
# jump-host link shaped to 100 Mbit/s with tc, against one copy of the same file over that
# link (ferry's own upload) in the same run. Goal: at most 1.3x the one copy.
# Needs root, openssh-server, iproute2 (tc), and about (hosts + 1) x size of free disk in /tmp.
#   benches/relay/run.sh
#   FERRY_BENCH_MIB=256 FERRY_BENCH_HOSTS=8 benches/relay/run.sh
#   FERRY_BENCH_TMPFS=1 benches/relay/run.sh   # the hosts' stores in a tmpfs (RAM), not /tmp's disk
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUST_BACKTRACE=0
if [ "${FERRY_BENCH_TMPFS:-0}" = 1 ]; then
    # Each host holds the blob and the agent (up to 128 MiB in a test build).
    need=$(( (${FERRY_BENCH_HOSTS:-16} + 2) * ${FERRY_BENCH_MIB:-1024} + ${FERRY_BENCH_HOSTS:-16} * 128 ))
    d=$(mktemp -d /tmp/ferry-relay-bench.XXXXXX)
    mount -t tmpfs -o "size=${need}m,mode=1777" tmpfs "$d"
    trap 'umount "$d"; rmdir "$d"' EXIT
    export TMPDIR="$d"
fi
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u '+%F %H:%MZ'), load $(cut -d' ' -f1-3 /proc/loadavg)"
nice -n 10 cargo test -q -p ferry-installer --test relay -- --ignored --exact \
    bench_relay_to_many_hosts_vs_one_copy --nocapture 2>&1 | grep -E '^BENCH|panicked|SKIPPED' || true
