# Sourced by the benchmarks that need an image: `docker_archive SIZE_MIB MIN_LAYERS MIX` writes
# ./image.tar, a docker archive (`docker save` form) of `bench/image:1` in 64 MiB layers, at
# least MIN_LAYERS of them. MIX: `random` (every layer random bytes: what compressed layers look
# like) or `mixed` (odd layers text-like, log lines and base64, that zstd shrinks; even ones
# random). Sets ARCHIVE_LAYERS to their number. Needs tar, sha256sum, base64.
docker_archive() {
    local size_mib=$1 min_layers=$2 mix=$3 layer_mib=64 n i d cfg
    n=$(( size_mib / layer_mib )); (( n >= min_layers )) || n=$min_layers
    ARCHIVE_LAYERS=$n
    echo "== making a docker archive of $n layers of ${layer_mib} MiB ($mix)"
    local diff_ids=() layers=()
    rm -rf save rootfs
    for i in $(seq 1 "$n"); do
        d=$(printf 'l%03d' "$i"); mkdir -p "rootfs/$d" "save/$d"
        if [[ $mix == mixed ]] && (( i % 2 )); then
            { seq -f "%.0f 2026-11-23T16:00:00Z host$i service=ferry level=info msg=processed" $((i*1000000)) $((i*1000000 + 260000));
              head -c $(( layer_mib * 1024 * 1024 / 2 )) /dev/urandom | base64 -w 120; } | head -c $(( layer_mib * 1024 * 1024 )) > "rootfs/$d/data"
        else
            head -c $(( layer_mib * 1024 * 1024 )) /dev/urandom > "rootfs/$d/data"
        fi
        tar -C "rootfs/$d" -cf "save/$d/layer.tar" data
        rm -rf "rootfs/$d"
        diff_ids+=("\"sha256:$(sha256sum "save/$d/layer.tar" | cut -d' ' -f1)\"")
        layers+=("\"$d/layer.tar\"")
    done
    local IFS=,
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "${diff_ids[*]}" > cfg.json
    cfg=$(sha256sum cfg.json | cut -d' ' -f1)
    mv cfg.json "save/$cfg.json"
    printf '[{"Config":"%s.json","RepoTags":["bench/image:1"],"Layers":[%s]}]' "$cfg" "${layers[*]}" > save/manifest.json
    tar -C save -cf image.tar .
    rm -rf save rootfs
}
