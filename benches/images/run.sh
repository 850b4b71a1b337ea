#!/usr/bin/env bash
# Image benchmark: one docker-archive (`docker save` layout) of SIZE_MIB in 64 MiB layers
# (half text-like, half random), measured in one run:
#   ferry bundle build of the image      vs  zstd -T0 -3 of the same archive   (throughput ratio)
#   ferry bundle build of the image      vs  the same archive as a plain [[files]] item
#                                            (what reading it as an image costs: scan + diff_id check)
#   peak RSS of the image build (must not grow with the archive)
# Usage: benches/images/run.sh [SIZE_MIB]   (default 1024; env WORK=dir for the scratch dir)
# Needs: a release build of ferry (built here), tar, zstd, sha256sum, GNU time (/usr/bin/time).
set -euo pipefail

SIZE_MIB=${1:-${SIZE_MIB:-1024}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-$ROOT/target/bench-images}
for tool in tar zstd sha256sum /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install tar zstd coreutils time)" >&2; exit 1; }
done

echo "== building ferry (release)"
cargo build --release -q -p ferry-installer --manifest-path "$ROOT/Cargo.toml"
FERRY=$ROOT/target/release/ferry

rm -rf "$WORK"; mkdir -p "$WORK"
cd "$WORK"
. "$ROOT/benches/lib/docker-archive.sh"
docker_archive "$SIZE_MIB" 2 mixed
INPUT=$(stat -c %s image.tar)

printf '[bundle]\nname = "bench-image"\nversion = "1"\n\n[[images]]\nref = "bench/image:1"\narchive = "image.tar"\n' > image.toml
printf '[bundle]\nname = "bench-file"\nversion = "1"\n\n[[files]]\nname = "image-archive"\npath = "image.tar"\n' > file.toml
"$FERRY" key generate -o key >/dev/null
cat image.tar > /dev/null   # same page-cache state for every tool

measure() { # LABEL CMD... -> seconds and peak RSS KiB into LABEL.time
    local label=$1; shift
    /usr/bin/time -f '%e %M' -o "$label.time" "$@" >/dev/null
}
echo "== zstd -T0 -3 of the archive"
measure ref zstd -q -T0 -3 -f image.tar -o ref.zst
echo "== ferry bundle build: the archive as a plain file"
measure file "$FERRY" bundle build file.toml -o file.bundle --sign-key key
echo "== ferry bundle build: the archive as an image"
measure image "$FERRY" bundle build image.toml -o image.bundle --sign-key key
"$FERRY" bundle verify image.bundle --pubkey key.pub >/dev/null

read -r r_s r_k < ref.time
read -r f_s f_k < file.time
read -r i_s i_k < image.time
mib() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / (s > 0 ? s : 0.01) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "input: docker archive of $(( INPUT / 1048576 )) MiB ($ARCHIVE_LAYERS layers); machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
printf '%-34s %8s s %7s MiB/s  peak RSS %6s MiB\n' "zstd -T0 -3" "$r_s" "$(mib "$INPUT" "$r_s")" $(( r_k / 1024 ))
printf '%-34s %8s s %7s MiB/s  peak RSS %6s MiB\n' "ferry build (archive as a file)" "$f_s" "$(mib "$INPUT" "$f_s")" $(( f_k / 1024 ))
printf '%-34s %8s s %7s MiB/s  peak RSS %6s MiB\n' "ferry build (archive as an image)" "$i_s" "$(mib "$INPUT" "$i_s")" $(( i_k / 1024 ))
echo "image build throughput / zstd -T0 -3:   $(ratio "$r_s" "$i_s")"
echo "image build throughput / file build:    $(ratio "$f_s" "$i_s")"
