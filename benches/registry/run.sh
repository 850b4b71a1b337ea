#!/usr/bin/env bash
# Registry benchmark: containerd pulling an image from `ferry registry serve` (the bundle as its
# docker.io mirror, through a hosts.toml) vs `ctr images import` of the same image from a local
# OCI archive (what ferry extracts for import), measured in one run; both unpack the image.
#   pull throughput / import throughput           (goal >= 0.8)
#   peak RSS of the registry (must not grow with the image)
# The image: SIZE_MIB in 64 MiB layers, half text-like (stored zstd in the bundle), half random
# (stored as-is). Each measurement runs a fresh private containerd (own root, state, socket; CRI
# off), so neither finds the other's content. Plain HTTP on loopback, and HTTPS with the site CA.
# Usage: benches/registry/run.sh [SIZE_MIB]   (default 512; env WORK=dir for the scratch dir,
#        REPEAT=n runs of each, best time kept, default 2; FERRY=binary to skip the build)
# Needs: root, containerd and ctr, tar, sha256sum, GNU time (/usr/bin/time).
set -euo pipefail

SIZE_MIB=${1:-${SIZE_MIB:-512}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-$ROOT/target/bench-registry}
REPEAT=${REPEAT:-2}
for tool in tar sha256sum containerd ctr /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install tar coreutils containerd time)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "containerd needs root: run as root" >&2; exit 1; }

if [[ -z ${FERRY:-} ]]; then
    echo "== building ferry (release)"
    cargo build --release -q -p ferry-installer --manifest-path "$ROOT/Cargo.toml"
    FERRY=$ROOT/target/release/ferry
fi

SERVE_PID=""; TLS_PID=""; CD_PID=""; CD_DIR=""
stop_containerd() {
    if [[ -n $CD_PID ]]; then
        kill "$CD_PID" 2>/dev/null || true
        wait "$CD_PID" 2>/dev/null || true
        CD_PID=""
    fi
    if [[ -n $CD_DIR ]]; then
        # Snapshots containerd left mounted (deepest first), then its files.
        grep -o " $CD_DIR/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
        rm -rf "$CD_DIR"; CD_DIR=""
    fi
}
cleanup() {
    stop_containerd
    for pid in $SERVE_PID $TLS_PID; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_containerd() { # DIR: a private containerd with everything under DIR
    CD_DIR=$1; mkdir -p "$CD_DIR"
    cat > "$CD_DIR/config.toml" <<EOF
version = 2
root = "$CD_DIR/root"
state = "$CD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CD_DIR/sock"
[ttrpc]
  address = "$CD_DIR/sock.ttrpc"
[debug]
  address = "$CD_DIR/debug.sock"
EOF
    containerd --config "$CD_DIR/config.toml" >"$CD_DIR.log" 2>&1 &
    CD_PID=$!
    for _ in $(seq 1 150); do
        ctr -a "$CD_DIR/sock" version >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "containerd did not start:" >&2; cat "$CD_DIR.log" >&2; exit 1
}

rm -rf "$WORK"; mkdir -p "$WORK"
cd "$WORK"
. "$ROOT/benches/lib/docker-archive.sh"
docker_archive "$SIZE_MIB" 2 mixed

echo "== the bundle, and the OCI archive ctr imports (extracted from it)"
printf '[bundle]\nname = "bench-registry"\nversion = "1"\n\n[[images]]\nref = "bench/image:1"\narchive = "image.tar"\n' > bundle.toml
"$FERRY" key generate -o key >/dev/null
"$FERRY" bundle build bundle.toml -o image.bundle --sign-key key >/dev/null
rm image.tar
"$FERRY" bundle extract image.bundle bench/image:1 -o oci --pubkey key.pub --oci-archive >/dev/null
ARCHIVE=$(ls oci/*.tar)
IMAGE_BYTES=$(stat -c %s "$ARCHIVE")

echo "== ferry registry serve (HTTP and HTTPS)"
"$FERRY" registry serve image.bundle --pubkey key.pub --listen 127.0.0.1:0 > serve.out 2>serve.err &
SERVE_PID=$!
"$FERRY" registry serve image.bundle --pubkey key.pub --listen 127.0.0.1:0 --tls-dir tls > serve-tls.out 2>serve-tls.err &
TLS_PID=$!
for _ in $(seq 1 100); do [[ -s serve.out && -s serve-tls.out ]] && break; sleep 0.1; done
ADDR=$(sed -n '1s|.*://||p' serve.out)
TLS_ADDR=$(sed -n '1s|.*://||p' serve-tls.out)
[[ -n $ADDR && -n $TLS_ADDR ]] || { cat serve.err serve-tls.err >&2; exit 1; }
mkdir -p hosts/docker.io hosts-tls/docker.io
printf '[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$ADDR" > hosts/docker.io/hosts.toml
printf '[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' "$TLS_ADDR" "$WORK/tls/ca.pem" > hosts-tls/docker.io/hosts.toml

cat image.bundle "$ARCHIVE" > /dev/null   # the same page-cache state for both
timed() { # LABEL CMD...: wall seconds of CMD into LABEL.times (one line per run)
    local label=$1; shift
    /usr/bin/time -f '%e' -a -o "$label.times" "$@" >/dev/null
}
for r in $(seq 1 "$REPEAT"); do
    echo "== run $r of $REPEAT"
    start_containerd "$WORK/cd-import-$r"
    timed import ctr -a "$CD_DIR/sock" -n bench images import "$ARCHIVE"
    stop_containerd
    start_containerd "$WORK/cd-pull-$r"
    timed pull ctr -a "$CD_DIR/sock" -n bench images pull --hosts-dir "$WORK/hosts" docker.io/bench/image:1
    stop_containerd
    start_containerd "$WORK/cd-pull-tls-$r"
    timed pull-tls ctr -a "$CD_DIR/sock" -n bench images pull --hosts-dir "$WORK/hosts-tls" docker.io/bench/image:1
    stop_containerd
done
rss_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
SERVE_RSS=$(rss_kib "$SERVE_PID"); TLS_RSS=$(rss_kib "$TLS_PID")
kill "$TLS_PID" 2>/dev/null || true
if [[ -s serve.err || -s serve-tls.err ]]; then echo "the registry warned:"; cat serve.err serve-tls.err; fi

best() { sort -n "$1.times" | head -1; }
mib() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / (s > 0 ? s : 0.01) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
i_s=$(best import); p_s=$(best pull); t_s=$(best pull-tls)
echo
echo "image: $(( IMAGE_BYTES / 1048576 )) MiB ($ARCHIVE_LAYERS layers, half text-like, half random); best of $REPEAT; $(date -u +%F); machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %7s s %6s MiB/s\n' "ctr images import (local OCI archive)" "$i_s" "$(mib "$IMAGE_BYTES" "$i_s")"
printf '%-44s %7s s %6s MiB/s\n' "ctr images pull from ferry registry (HTTP)" "$p_s" "$(mib "$IMAGE_BYTES" "$p_s")"
printf '%-44s %7s s %6s MiB/s\n' "ctr images pull from ferry registry (HTTPS)" "$t_s" "$(mib "$IMAGE_BYTES" "$t_s")"
echo "pull / import throughput (HTTP):   $(ratio "$i_s" "$p_s")   (goal >= 0.8)"
echo "pull / import throughput (HTTPS):  $(ratio "$i_s" "$t_s")"
echo "registry peak RSS: $(( SERVE_RSS / 1024 )) MiB (HTTP), $(( TLS_RSS / 1024 )) MiB (HTTPS)"
echo "all runs (s): import $(paste -sd' ' import.times); pull $(paste -sd' ' pull.times); pull-tls $(paste -sd' ' pull-tls.times)"
