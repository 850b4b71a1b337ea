#!/usr/bin/env bash
# Images-step benchmark on this machine's real CPU (issue 12: the images step at least 0.9 of
# the throughput of `ctr images import` of the same archive run on the node itself).
#   ferry: its own `images` step (installer/src/cluster/images_bench.rs) over its SSH session to
#          a real sshd on loopback, streaming the image out of the bundle into `ctr import -`
#          against a fresh private containerd;
#   reference: `ctr images import` of the OCI archive extracted from the same bundle, from the
#          page cache, into another fresh containerd. Both unpack the image.
# Here the jump host, the sshd and containerd share this machine's cores; on a site the
# jump host's half of the encryption runs on another machine.
# The image: SIZE_MIB in 64 MiB layers of random bytes (what compressed layers look like).
# ferry's side runs as the release build does (`cargo test --release`: the workspace's own crates
# at opt-level 3; the test profile builds them at 1). PROFILE=test measures the test build.
# FERRY_BENCH_SPLIT_CPUS=1: the node (containerd, sshd, ctr) pinned to CPU 0 and ferry to CPU 1,
# as on a site where the jump host is another machine; the reference import gets CPU 0 too.
# Usage: benches/images-step/run.sh [SIZE_MIB]   (default 384; REPEAT=n runs, median kept,
#        default 3; WORK=dir for the scratch dir). Needs root, containerd, ctr, sshd.
set -euo pipefail

SIZE_MIB=${1:-${SIZE_MIB:-384}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-$ROOT/target/bench-images-step}
for tool in tar sha256sum containerd ctr /usr/sbin/sshd; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install tar coreutils containerd openssh-server)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "containerd and the test sshd need root: run as root" >&2; exit 1; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) nproc=$(nproc) $(lscpu | sed -n 's/^Model name: *//p')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build -q -p ferry-installer --manifest-path "$ROOT/Cargo.toml"
FERRY=$ROOT/target/debug/ferry

rm -rf "$WORK"; mkdir -p "$WORK"
cd "$WORK"
. "$ROOT/benches/lib/docker-archive.sh"
docker_archive "$SIZE_MIB" 1 random

# The cluster bundle needs a [k3s] item; the step under test reads none of it.
printf 'not k3s\n' > k3s
tar -cf airgap.tar k3s
sha() { sha256sum "$1" | cut -d' ' -f1; }
cat > bundle.toml <<TOML
[bundle]
name = "bench-images-step"
version = "1"

[k3s]
version = "v1.30.4+k3s1"
binary = { path = "k3s", sha256 = "$(sha k3s)" }
airgap_images = { path = "airgap.tar", sha256 = "$(sha airgap.tar)" }

[[images]]
ref = "bench/image:1"
archive = "image.tar"
TOML
"$FERRY" key generate -o key >/dev/null
"$FERRY" bundle build bundle.toml -o image.bundle --sign-key key >/dev/null
rm image.tar
"$FERRY" bundle extract image.bundle bench/image:1 -o oci --pubkey key.pub --oci-archive >/dev/null
ARCHIVE=$(ls "$WORK"/oci/*.tar)
cat image.bundle "$ARCHIVE" > /dev/null   # the same page-cache state for both

cd "$ROOT"
release=--release; [[ ${PROFILE:-release} == test ]] && release=
echo "# ferry's side: ${PROFILE:-release} build"
pin=(); [[ ${FERRY_BENCH_SPLIT_CPUS:-} == 1 ]] && pin=(taskset -c 1)
echo "# cpus: ${pin[*]:-shared}"
FERRY_BENCH_BUNDLE=$WORK/image.bundle FERRY_BENCH_PUBKEY=$WORK/key.pub FERRY_BENCH_ARCHIVE=$ARCHIVE \
  "${pin[@]}" cargo test $release -q -p ferry-installer --bin ferry -- --ignored --exact \
  cluster::images_bench::bench_images_step --nocapture > "$WORK/bench.log" 2>&1 ||
  { cat "$WORK/bench.log" >&2; exit 1; }
grep '^BENCH ' "$WORK/bench.log"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
