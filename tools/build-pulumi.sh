#!/usr/bin/env bash
# Builds the Pulumi engine and Python language host from their Go modules at
# exactly the pinned Python SDK version. No registry here ships the engine
# binary, so it is compiled once and cached per user, keyed by version and
# build recipe; fresh clones (and CI) reuse it.
# Prints the bin directory as the last line of stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VDESK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vdesk}

version=$(sed -n 's/^ *"pulumi==\([0-9.]*\)".*/\1/p' "$repo/pyproject.toml")
[ -n "$version" ] || { echo "build-pulumi: no pulumi==X pin in pyproject.toml" >&2; exit 1; }
recipe=$(cat "$0" "$here"/pulumi/* | sha256sum | cut -c1-12)
dest="$cache/toolchain/pulumi-v$version-$recipe"

if [ "${1:-}" = "--print-path" ]; then echo "$dest/bin"; exit 0; fi
if [ -x "$dest/bin/pulumi" ] && [ -x "$dest/bin/pulumi-language-python" ]; then
    echo "$dest/bin"; exit 0
fi

command -v go >/dev/null || { echo "build-pulumi: Go is required (https://go.dev) and was not found" >&2; exit 1; }
mkdir -p "$cache/toolchain"
exec 9>"$cache/toolchain/.lock"
flock 9
if [ -x "$dest/bin/pulumi" ]; then echo "$dest/bin"; exit 0; fi   # built while we waited

start=$(date +%s)
say() { echo "[build-pulumi +$(( $(date +%s) - start ))s] $*" >&2; }
work=$(mktemp -d "$cache/toolchain/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

sed "s/@VERSION@/v$version/g" "$here/pulumi/go.mod.in" > "$work/go.mod"
cd "$work"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOTOOLCHAIN=local
# What the two commands import, and nothing else: `go mod tidy` would also fetch every
# dependency's test-only modules (measured: 2,561 go.mod files and 462 MB in 322 s, against
# 214 and 316 MB in 84 s for the packages the build needs; the versions chosen are the same).
packages=(github.com/pulumi/pulumi/pkg/v3/cmd/pulumi github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)
say "resolving Go modules for pulumi v$version (first run downloads ~300 MB)"
go list -deps "${packages[@]}" 2>&1 >/dev/null | sed -u 's/^/  /' | awk 'NR % 25 == 1 { print; fflush() }' >&2

# A heartbeat while a long step runs (its own output says nothing for minutes).
with_heartbeat() {
    local what=$1 pid rc=0 waited=0
    shift
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        waited=$((waited + 1))
        [ $((waited % 30)) -ne 0 ] || say "  ... still $what"
    done
    wait "$pid" || rc=$?
    return "$rc"
}
# -checklinkname=0: pulumi's dependency github.com/pgavlin/text links to a
# Go-internal symbol that newer Go linkers refuse by default.
ldflags="-checklinkname=0 -X github.com/pulumi/pulumi/pkg/v3/version.Version=v$version"
mkdir -p "$work/out/bin"
say "compiling pulumi (several minutes on 2 cores)"
with_heartbeat "compiling pulumi" go build -o "$work/out/bin/" -ldflags "$ldflags" "${packages[0]}"
say "compiling pulumi-language-python"
with_heartbeat "compiling pulumi-language-python" go build -o "$work/out/bin/" -ldflags "$ldflags" "${packages[1]}"
# The language host runs programs through the exec shim that the official
# distribution places beside it; it ships inside the sdk module we built from.
sdk_dir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$work/out/bin/"
install -m 0755 "$here/pulumi/pulumi-resource-pulumi-python" "$work/out/bin/"
got=$("$work/out/bin/pulumi" version)
[ "$got" = "v$version" ] || { echo "build-pulumi: built $got, expected v$version" >&2; exit 1; }
rm -rf "$dest"
mv "$work/out" "$dest"
say "done: $dest/bin ($got)"
echo "$dest/bin"
