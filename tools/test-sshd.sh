#!/usr/bin/env bash
# An OpenSSH server binary for the tests' remote KVM host (an sshd inside a libvirtd's namespaces).
# It is taken from Debian's package with apt-get download and unpacked into the cache, never
# installed: installing openssh-server would start a system sshd on port 22.
#   tools/test-sshd.sh              ensure it, print the path of the sshd binary
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/paths.sh"

version=$(apt-cache policy openssh-server | awk '/Candidate:/ {print $2}')
[ -n "$version" ] && [ "$version" != "(none)" ] || { echo "test-sshd: no openssh-server candidate in apt" >&2; exit 1; }
dir="$VDESK_CACHE/sshd/${version//[:~+]/_}"
if [ ! -x "$dir/root/usr/sbin/sshd" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # _apt cannot write into a private temp dir: download as the caller (the warning says so, harmlessly).
    (cd "$work" && apt-get download -q openssh-server libwrap0 >/dev/null 2>&1) \
        || { apt-get update -qq >&2 && (cd "$work" && apt-get download -q openssh-server libwrap0 >/dev/null 2>&1); }
    mkdir -p "$work/root"
    for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
    rm -rf "$dir" && mkdir -p "$(dirname "$dir")" && mv "$work/root" "$dir.tmp" && mkdir -p "$dir" && mv "$dir.tmp" "$dir/root"
fi
echo "$dir/root/usr/sbin/sshd"
