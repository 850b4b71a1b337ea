#!/usr/bin/env bash
# Builds `ferry` for old distributions (CentOS 7 / RHEL 7 ship glibc 2.17) with cargo-zigbuild,
# which links against the glibc version named in the target, then checks the binary: every
# GLIBC_ symbol version it needs must be at most that version, or the script fails and lists
# the symbols that need more.
#
#   scripts/build-compat.sh            # build + check; also writes ferry.stripped beside it
#   scripts/build-compat.sh --check-only PATH   # check an existing binary
#
# Needs: cargo-zigbuild (cargo install cargo-zigbuild --locked), zig (the `ziglang` Python
# package is enough), objdump (binutils). FERRY_COMPAT_GLIBC overrides 2.17.
set -euo pipefail

GLIBC="${FERRY_COMPAT_GLIBC:-2.17}"
TRIPLE="x86_64-unknown-linux-gnu"

die() { echo "build-compat: $*" >&2; exit 2; }

# The highest GLIBC_x.y version an ELF binary needs; the offending symbols go to stderr.
check() {
    local bin="$1" max offenders
    command -v objdump >/dev/null || die "objdump not found: apt-get install binutils"
    [ -f "$bin" ] || die "$bin does not exist"
    max=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -u -V | tail -n 1)
    [ -n "$max" ] || die "$bin needs no GLIBC_ symbols (not a dynamically linked glibc binary?)"
    if [ "$(printf '%s\n%s\n' "$max" "$GLIBC" | sort -V | tail -n 1)" != "$GLIBC" ]; then
        echo "build-compat: FAIL: $bin needs glibc $max, more than $GLIBC; symbols:" >&2
        offenders=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*)\? .*' | while read -r v sym; do
            v=${v#GLIBC_}; v=${v%)}
            if [ "$(printf '%s\n%s\n' "$v" "$GLIBC" | sort -V | tail -n 1)" != "$GLIBC" ]; then
                echo "  $sym (GLIBC_$v)"
            fi
        done | sort -u)
        echo "$offenders" >&2
        return 1
    fi
    echo "build-compat: OK: $bin needs at most glibc $max (limit $GLIBC)"
}

if [ "${1:-}" = "--check-only" ]; then
    check "${2:?usage: build-compat.sh --check-only BINARY}"
    exit $?
fi

cd "$(dirname "$0")/.."
command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild not found: cargo install cargo-zigbuild --locked"
if ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
    die "zig not found: pip install ziglang (or put zig on PATH)"
fi

start=$(date +%s)
cargo zigbuild --release --locked -p ferry-installer --bin ferry --target "$TRIPLE.$GLIBC"
bin="target/$TRIPLE/release/ferry"
echo "build-compat: built $bin in $(( $(date +%s) - start ))s"
check "$bin"
"$bin" --version
# The agent is uploaded to every host: a copy without debug info is a fraction of the size.
objcopy --strip-debug "$bin" "$bin.stripped"
echo "build-compat: $bin.stripped ($(du -h "$bin.stripped" | cut -f1), from $(du -h "$bin" | cut -f1))"
