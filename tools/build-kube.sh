#!/usr/bin/env bash
# Builds the test tier's kube-apiserver and etcd from their Go modules (no
# registry here ships either binary). Compiled once and cached per user, keyed
# by release and build recipe; fresh clones (and CI) reuse it.
# Prints the bin directory as the last line of stdout; progress goes to stderr.
set -euo pipefail

kube_version=1.34.4
here=$(cd "$(dirname "$0")" && pwd)
cache=${VDESK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vdesk}
recipe=$(cat "$0" "$here"/kube/go.mod.in "$here"/kube/etcd/* | sha256sum | cut -c1-12)
dest="$cache/toolchain/kube-v$kube_version-$recipe"

if [ "${1:-}" = "--print-path" ]; then echo "$dest/bin"; exit 0; fi
if [ -x "$dest/bin/kube-apiserver" ] && [ -x "$dest/bin/etcd" ]; then
    echo "$dest/bin"; exit 0
fi

command -v go >/dev/null || { echo "build-kube: Go is required (https://go.dev) and was not found" >&2; exit 1; }
mkdir -p "$cache/toolchain"
exec 9>"$cache/toolchain/.lock-kube"
flock 9
if [ -x "$dest/bin/kube-apiserver" ] && [ -x "$dest/bin/etcd" ]; then echo "$dest/bin"; exit 0; fi   # built while we waited

start=$(date +%s)
say() { echo "[build-kube +$(( $(date +%s) - start ))s] $*" >&2; }
work=$(mktemp -d "$cache/toolchain/.build-kube-XXXXXX")
trap 'rm -rf "$work"' EXIT

export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOTOOLCHAIN=local
cd "$work"
sed "s/@KUBE@/v$kube_version/g" "$here/kube/go.mod.in" > go.mod
cp -r "$here/kube/etcd" etcd
# Upstream's go.mod pins every staging module at v0.0.0 and replaces it with a
# directory of its own tree; here each one is the published module of the same release.
say "reading k8s.io/kubernetes v$kube_version's go.mod"
upstream_mod=$(go mod download -json "k8s.io/kubernetes@v$kube_version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$upstream_mod" | while read -r staged; do
    echo "replace $staged => $staged v0.${kube_version#1.}"
done >> go.mod

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
# Only what the two commands import (`go mod tidy` would also fetch every test-only module).
packages=(k8s.io/kubernetes/cmd/kube-apiserver ./etcd)
say "resolving Go modules for kube-apiserver v$kube_version and etcd"
with_heartbeat "downloading modules" go list -deps "${packages[@]}" >/dev/null
minor=${kube_version#1.}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$kube_version"
ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
mkdir -p "$work/out/bin"
say "compiling kube-apiserver (many minutes on 2 cores)"
with_heartbeat "compiling kube-apiserver" nice -n 10 go build -trimpath -o "$work/out/bin/" -ldflags "$ldflags" "${packages[0]}"
say "compiling etcd"
with_heartbeat "compiling etcd" nice -n 10 go build -trimpath -o "$work/out/bin/etcd" -ldflags "-s -w" "${packages[1]}"
got=$("$work/out/bin/kube-apiserver" --version)
[ "$got" = "Kubernetes v$kube_version" ] || { echo "build-kube: built '$got', expected v$kube_version" >&2; exit 1; }
rm -rf "$dest"
mv "$work/out" "$dest"
say "done: $dest/bin ($got)"
echo "$dest/bin"
