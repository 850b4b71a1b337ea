#!/usr/bin/env bash
# Bundle benchmark: on one mixed input (half text-like, half incompressible), in one run,
#   build throughput  vs  tar -c | zstd -T0 -3      (goal >= 1.0)
#   verify throughput vs  openssl dgst -sha256       (goal >= 0.9), same bundle bytes
#   peak RSS of build and verify                     (goal <= 64 MiB)
# Usage: benches/bundle/run.sh [SIZE_MIB]   (default 2048; env WORK=dir for the scratch dir,
#        REPEAT=n runs of each command, best time kept; default 2; FERRY=binary to skip the build)
# Needs: a release build of ferry (built here), tar, zstd, openssl, GNU time (/usr/bin/time).
set -euo pipefail

SIZE_MIB=${1:-${SIZE_MIB:-2048}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-$ROOT/target/bench-bundle}
FILE_MIB=64
for tool in tar zstd openssl /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install tar zstd openssl time)" >&2; exit 1; }
done

if [[ -z ${FERRY:-} ]]; then
    echo "== building ferry (release)"
    cargo build --release -q -p ferry-installer --manifest-path "$ROOT/Cargo.toml"
    FERRY=$ROOT/target/release/ferry
fi

rm -rf "$WORK"; mkdir -p "$WORK/in"
cd "$WORK"
echo "== making ${SIZE_MIB} MiB of input in ${FILE_MIB} MiB files (half text-like, half random)"
n=$(( SIZE_MIB / FILE_MIB )); (( n >= 2 )) || n=2
spec=bundle.toml
printf '[bundle]\nname = "bench"\nversion = "1"\n' > $spec
for i in $(seq 1 "$n"); do
    f=$(printf 'in/f%03d' "$i")
    if (( i % 2 )); then
        # Text-like: numbered log lines interleaved with base64 (zstd -3 gets about 2:1).
        { seq -f "%.0f 2026-11-23T16:00:00Z host$i service=ferry level=info msg=processed" $((i*1000000)) $((i*1000000 + 260000));
          head -c $(( FILE_MIB * 1024 * 1024 / 2 )) /dev/urandom | base64 -w 120; } | head -c $(( FILE_MIB * 1024 * 1024 )) > "$f"
    else
        head -c $(( FILE_MIB * 1024 * 1024 )) /dev/urandom > "$f"
    fi
    printf '\n[[files]]\nname = "f%03d"\npath = "%s"\n' "$i" "$f" >> $spec
done
cat in/* > /dev/null   # same page-cache state for both tools
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
INPUT=$(du -cb in | tail -1 | cut -f1)
"$FERRY" key generate -o key >/dev/null

REPEAT=${REPEAT:-2}
run_one() { # LABEL CMD... -> best wall time, its CPU time (user+sys) and the largest peak RSS (KiB)
    local label=$1; shift
    local s c k best cpu rss
    /usr/bin/time -f '%e %U %S %M' -o "$label.run" "$@" >/dev/null
    read -r s u y k < "$label.run"
    c=$(awk -v u="$u" -v y="$y" 'BEGIN { print u + y }')
    if [[ -f $label.time ]]; then
        read -r best cpu rss < "$label.time"
        if awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s; cpu=$c; fi
        (( k > rss )) && rss=$k
    else
        best=$s; cpu=$c; rss=$k
    fi
    echo "$best $cpu $rss" > "$label.time"
}

sync   # no writeback of the freshly made input during the measurements
rm -f ./*.time
# ferry fsyncs the bundle before renaming it into place (a crash never leaves a torn bundle);
# the reference gets the same durability with sync(1) on its output. Runs alternate, so
# both tools see the same machine load; the best of $REPEAT rounds is kept.
for round in $(seq 1 "$REPEAT"); do
    echo "== round $round/$REPEAT: build with tar | zstd -T0 -3, then ferry bundle build"
    run_one ref_build bash -c "tar -C in -c . | zstd -q -T0 -3 -o ref.tar.zst -f && sync ref.tar.zst"
    run_one ferry_build "$FERRY" bundle build $spec -o bench.bundle --sign-key key
    sync
done
BUNDLE=$(stat -c %s bench.bundle)
cat bench.bundle > /dev/null
for round in $(seq 1 "$REPEAT"); do
    echo "== round $round/$REPEAT: verify with openssl dgst -sha256, then ferry bundle verify"
    run_one ref_verify openssl dgst -sha256 bench.bundle
    run_one ferry_verify "$FERRY" bundle verify bench.bundle --pubkey key.pub
done

read -r rb_s rb_c rb_k < ref_build.time
read -r fb_s fb_c fb_k < ferry_build.time
read -r rv_s rv_c rv_k < ref_verify.time
read -r fv_s fv_c fv_k < ferry_verify.time
REF=$(stat -c %s ref.tar.zst)
awk -v inp="$INPUT" -v b="$BUNDLE" -v r="$REF" \
    -v rb="$rb_s" -v fb="$fb_s" -v rv="$rv_s" -v fv="$fv_s" -v rbc="$rb_c" -v fbc="$fb_c" -v rvc="$rv_c" -v fvc="$fv_c" -v fbk="$fb_k" -v fvk="$fv_k" -v rbk="$rb_k" \
    -v cores="$(nproc)" -v cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)" -v load="$LOAD" 'BEGIN {
    mib = 1048576
    printf "\ninput %.0f MiB; ferry bundle %.0f MiB (%.1f%%), tar|zstd %.0f MiB (%.1f%%)\n", inp/mib, b/mib, 100*b/inp, r/mib, 100*r/inp
    printf "build : ferry %6.2f s (%7.1f MiB/s)  tar|zstd -T0 -3 %6.2f s (%7.1f MiB/s)  ratio %.2f (goal >= 1.0)\n", fb, inp/mib/fb, rb, inp/mib/rb, rb/fb
    printf "verify: ferry %6.2f s (%7.1f MiB/s)  openssl dgst    %6.2f s (%7.1f MiB/s)  ratio %.2f (goal >= 0.9)\n", fv, b/mib/fv, rv, b/mib/rv, rv/fv
    printf "cpu   : build ferry %.2f s vs %.2f s (ratio %.2f); verify ferry %.2f s vs %.2f s (ratio %.2f)\n", fbc, rbc, rbc/fbc, fvc, rvc, rvc/fvc
    printf "peak RSS: build %.1f MiB, verify %.1f MiB (goal <= 64 MiB); zstd pipeline %.1f MiB\n", fbk/1024, fvk/1024, rbk/1024
    printf "machine: %s cores, %s, load before the run: %s\n", cores, cpu, load
}'
