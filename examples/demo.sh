#!/usr/bin/env bash
# ferry's main job on built-in example inputs, on a machine with only the Rust toolchain:
# make inputs, generate a key, pack and sign an app package, build a signed bundle, verify it,
# inspect it, build it again split into parts (as for a FAT32 stick), verify the parts, and
# extract from them.
# Everything goes under target/demo/ (removed and remade on each run).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/demo
# A fixed build time, so the two builds below give the same bytes (see "parts" below).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building ferry and the demo's input maker (the first build compiles about 355 crates: see README.md for how long it takes; later runs take seconds)"
# One cargo run for both, so shared dependencies are built once with the same features; the
# test harness (a dev-dependency) is not built.
cargo build -p ferry-installer -p ferry-demo-inputs --manifest-path "$ROOT/Cargo.toml"
FERRY=$TARGET/debug/ferry
rm -rf "$OUT"; mkdir -p "$OUT"

step "making example inputs in $OUT/inputs (files, a directory, an image archive, stand-ins)"
"$TARGET/debug/make-demo-inputs" "$OUT/inputs" >/dev/null
cp "$ROOT/examples/bundle.toml" "$OUT/inputs/bundle.toml"

step "ferry key generate"
"$FERRY" key generate -o "$OUT/demo-key"

step "ferry app pack (the sample MCD platform, signed; same input, same bytes)"
"$FERRY" app pack "$OUT/inputs/mcd" -o "$OUT/inputs/mcd-2.3.0.fap" --sign-key "$OUT/demo-key"
"$FERRY" app inspect "$OUT/inputs/mcd-2.3.0.fap" --pubkey "$OUT/demo-key.pub"

step "ferry bundle build"
"$FERRY" bundle build "$OUT/inputs/bundle.toml" -o "$OUT/demo.bundle" --sign-key "$OUT/demo-key"

step "ferry bundle verify --deep"
"$FERRY" bundle verify "$OUT/demo.bundle" --pubkey "$OUT/demo-key.pub" --deep

step "ferry bundle inspect"
"$FERRY" bundle inspect "$OUT/demo.bundle" --pubkey "$OUT/demo-key.pub"

step "ferry bundle build --max-part-size 64K (parts for removable media)"
mkdir -p "$OUT/usb"
"$FERRY" bundle build "$OUT/inputs/bundle.toml" -o "$OUT/usb/demo.bundle" --sign-key "$OUT/demo-key" --max-part-size 64K >/dev/null
ls -l "$OUT/usb"
cat "$OUT"/usb/demo.bundle.part[0-9]* | cmp - "$OUT/demo.bundle"
echo "the parts hold exactly the bytes of the single-file bundle (reproducible build)"

step "ferry bundle verify (reads straight across the parts)"
"$FERRY" bundle verify "$OUT/usb/demo.bundle" --pubkey "$OUT/demo-key.pub"

step "ferry bundle extract (all items, from the parts)"
"$FERRY" bundle extract "$OUT/usb/demo.bundle" -o "$OUT/extracted" --pubkey "$OUT/demo-key.pub"
cmp "$OUT/extracted/payload" "$OUT/inputs/payload.txt"
diff -r "$OUT/extracted/site-docs" "$OUT/inputs/site-docs"
cmp "$OUT/extracted/k3s/k3s" "$OUT/inputs/k3s-STAND-IN"

step "ferry bundle extract one image as an OCI archive (for ctr images import)"
"$FERRY" bundle extract "$OUT/demo.bundle" demo/app:1.0 --oci-archive -o "$OUT/oci" --pubkey "$OUT/demo-key.pub"
tar -tf "$OUT/oci/demo_app_1.0.tar"

step "demo OK: everything is under $OUT"
