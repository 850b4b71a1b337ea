#!/bin/sh
# Fuzzes the license and request parsers for a bounded time each: licensing/fuzz/run.sh SECONDS
# cargo-fuzz needs nightly features; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
# Installs cargo-fuzz when missing. Exits non-zero when a target finds a crash (kept in artifacts/).
set -eu
secs="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
cd "$here"
export RUSTC_BOOTSTRAP=1
# Seed the corpora with real files so the fuzzer starts from valid structure.
if [ -z "$(ls corpus/license_file 2>/dev/null)" ] || [ -z "$(ls corpus/request_file 2>/dev/null)" ]; then
    (cd .. && cargo run --quiet --example fuzz_seeds -- "$here/corpus")
fi
# Both targets fuzz at once, each on its own core for the whole time (one after the other they
# took twice the wall time for the same fuzzing): built first, then run side by side, each
# logging to its own file, shown when it ends.
cargo fuzz build
mkdir -p logs
pids=""
for target in license_file request_file; do
    echo "fuzzing $target for ${secs}s (log: licensing/fuzz/logs/$target.log)" >&2
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -max_len=8192 \
        >"logs/$target.log" 2>&1 &
    pids="$pids $!"
done
failed=0
for pid in $pids; do
    wait "$pid" || failed=1
done
for target in license_file request_file; do
    echo "== $target" >&2
    if [ "$failed" = 1 ]; then cat "logs/$target.log" >&2; else tail -n 3 "logs/$target.log" >&2; fi
done
exit "$failed"
