#!/usr/bin/env bash
# SSH transport benchmark: ferry's russh uploads and facts against OpenSSH in the same run.
# Needs root and openssh-server (the tests start their own sshd on loopback ports).
#   benches/ssh/run.sh                 # 1 GiB to one host, 256 MiB to 16 hosts, facts from 64
#   FERRY_BENCH_MIB=256 benches/ssh/run.sh
# Prints one "BENCH ..." line per measurement, with the ratios computed in that same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUST_BACKTRACE=0
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%F)"
# One test per process, so peak RSS belongs to one measurement.
for t in bench_upload_one_host_vs_scp bench_upload_many_hosts_vs_sequential_scp bench_facts_from_many_hosts; do
    cargo test -q -p ferry-inventory --test ssh_bench -- --ignored --exact "$t" --nocapture 2>&1 \
        | grep -E '^BENCH|panicked|SKIPPED' || true
done
