#!/usr/bin/env bash
# AppPackage deploy benchmark (issue 13): on a k3s stand-in node reached over SSH (real
# containerd, real pods and HTTP probes; FERRY_TEST_K3S for a real k3s), the time of a first
# install, an upgrade (apply, then wait until healthy), and a failed upgrade whose probe never
# passes: the time until the previous revision is recorded back, and whether the previous
# revision kept answering HTTP all along (requests every 250 ms from the node's network).
# Run as root from the repository root: benches/apps/run.sh. Figures: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) nproc=$(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build -q -p k3s-standin --bin k3s-STAND-IN
cargo test -q -p ferry-installer --test apps_standin -- --exact \
  deploys_upgrades_rolls_back_a_failed_probe_and_removes_an_app --nocapture 2>&1 | grep '^BENCH '
# The sample MCD platform (examples/mcd: 7 components of every kind) deployed whole.
cargo test -q -p ferry-installer --test apps_standin -- --exact \
  the_sample_mcd_platform_runs_every_component_for_real --nocapture 2>&1 | grep '^BENCH '
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
