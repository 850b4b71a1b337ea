#!/usr/bin/env bash
# vm-tests benchmark: time from `Testbed::start` to every VM answering an SSH login, for 1, 3 and
# 5 VMs, booted (FERRY_VM_RESTORE=0) and restored from the saved state of a booted VM (the
# default), interleaved so both see the same machine load; qemu's CPU time per VM (the
# load-independent cost) and resident memory; then an honest KVM probe. Run as root from the
# repository root, under the VM lock on a shared machine:
#   flock /work/.vm.lock benches/vm/run.sh   (sizes: VM_BENCH_SIZES, default "1 3 5"; runs: VM_BENCH_RUNS, 2)
# Goal (issue 4): 3 VMs ready in under 30 s on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${VM_BENCH_SIZES:-"1 3 5"}
runs=${VM_BENCH_RUNS:-2}

cargo build -q -p vm-tests --release --example boot_time
bin=target/release/examples/boot_time

echo "# $(date -u +%Y-%m-%dT%H:%MZ) nproc=$(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The first start builds the base image and takes the saved state if they are not cached yet;
# keep that out of the figures.
"$bin" 1 >/dev/null
for n in $sizes; do
  for r in $(seq "$runs"); do
    FERRY_VM_RESTORE=0 "$bin" "$n" tcg
    "$bin" "$n" tcg
  done
done
if [ "${VM_BENCH_KVM:-1}" = 1 ]; then
  echo "# KVM probe (nested KVM: expected to fail on these machines)"
  "$bin" probe-kvm
fi
