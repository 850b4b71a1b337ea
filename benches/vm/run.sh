#!/usr/bin/env bash
# vm-tests benchmark: time from `Testbed::start` to every VM answering an SSH login, for 1, 3 and
# 5 VMs, and the resident memory of each qemu; then an honest KVM probe (boots one VM with KVM
# and reports whether it reached SSH). Run as root from the repository root:
#   benches/vm/run.sh            (sizes from VM_BENCH_SIZES, default "1 3 5"; 2 runs each)
# Goal (issue 4): 3 VMs ready in under 30 s on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${VM_BENCH_SIZES:-"1 3 5"}
runs=${VM_BENCH_RUNS:-2}

cargo build -q -p vm-tests --release --example boot_time
bin=target/release/examples/boot_time

echo "# $(date -u +%Y-%m-%dT%H:%MZ) nproc=$(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The first start builds the base image if it is not cached yet; keep that out of the figures.
"$bin" 1 >/dev/null
for n in $sizes; do
  for r in $(seq "$runs"); do
    "$bin" "$n" tcg
  done
done
echo "# KVM probe (nested KVM: expected to fail on these machines)"
"$bin" probe-kvm
