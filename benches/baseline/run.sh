#!/usr/bin/env bash
# Host-baseline benchmark (issue 6): wall time of `ferry apply` of the default baseline (no
# bundle, so no packages) on 1, 3 and 5 fresh VMs, and the ratio 5 VMs / 1 VM (5.0 would be
# linear). Each run boots a new testbed (fresh overlays) outside the timed part; the timing
# is `ferry apply` alone, from start to exit, checked to end with every host ok. Run as root
# from the repository root:
#   benches/baseline/run.sh      (sizes: BASELINE_BENCH_SIZES, default "1 3 5";
#                                 runs per size: BASELINE_BENCH_RUNS, default 1)
# The ferry binary is the test profile's (dependencies at opt-level 2, as in every test);
# FERRY_BIN=target/release/ferry times a release build instead. Figures: docs/perf-baseline.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${BASELINE_BENCH_SIZES:-"1 3 5"}
runs=${BASELINE_BENCH_RUNS:-1}
test_args=(-p ferry-installer --test baseline_vm)

cargo test -q "${test_args[@]}" --no-run
echo "# $(date -u +%Y-%m-%dT%H:%MZ) nproc=$(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg); ferry: ${FERRY_BIN:-test profile}"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for n in $sizes; do
  for r in $(seq "$runs"); do
    line=$(FERRY_BENCH_VMS=$n cargo test -q "${test_args[@]}" -- --ignored --exact \
      bench_baseline_apply --nocapture 2>&1 | grep '^BENCH ' || true)
    if [ -z "$line" ]; then
      echo "vms=$n run $r: no result (the test failed or was skipped; run it alone to see why)" >&2
      exit 1
    fi
    echo "$line" | tee -a "$results"
  done
done
# Mean apply time per size, and 5-VM (largest) over 1-VM (smallest).
awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    sum[f["vms"]] += f["apply_s"]; cnt[f["vms"]]++ }
  END {
    min = -1; max = -1
    for (n in sum) { n += 0; if (min < 0 || n < min) min = n; if (n > max) max = n }
    for (n in sum) printf "mean apply_s vms=%s %.1f\n", n, sum[n] / cnt[n]
    if (min > 0 && max > min)
      printf "ratio vms=%d/vms=%d: %.2f (linear would be %.1f)\n", max, min,
        (sum[max] / cnt[max]) / (sum[min] / cnt[min]), max / min
  }' "$results"
