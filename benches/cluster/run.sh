#!/usr/bin/env bash
# Cluster-phase benchmark (issue 12): a 3-VM `ferry apply` with k3s (the stand-in unless
# FERRY_TEST_K3S names a real k3s) from bare VMs, its wall time and the slowest host of each
# step; and the images step (streamed from the bundle into `ctr images import -` on the node)
# against `ctr images import` of the same archive from the node's own disk (goal: ratio >= 0.9).
# Run as root from the repository root: benches/cluster/run.sh. Figures: docs/performance.md.
# FERRY_BENCH_VMS=1 benches/cluster/run.sh: one host alone (the images step not sharing the
# emulated cores with two other VMs, as the reference does not).
# FERRY_TEST_IMAGES=registry FERRY_BENCH_VMS=2 benches/cluster/run.sh: the images pulled from the
# site registry on the first server ([cluster] images = "registry", two nodes or more; the
# `registry` step, sending ferry and the bundle there, is reported beside the `images` step).
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) nproc=$(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build -q -p k3s-standin --bin k3s-STAND-IN
cargo test -q -p ferry-installer --test cluster_vm -- --ignored --exact bench_cluster_install \
  --nocapture 2>&1 | grep '^BENCH '
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
