#!/usr/bin/env bash
# Installs whatever is missing for vdesk, idempotently, and caches what it builds
# per user (outside the clone) so fresh clones and CI reuse it:
#   1. Debian packages: libvirt, qemu, image tools (apt-get, only when missing)
#   2. a Python virtualenv with the pinned packages ([tool.vdesk].pinned), keyed by pyproject.toml's hash
#   3. the Pulumi engine, built from Go at the pinned SDK version (tools/build-pulumi.sh),
#      at the same time as 2 (one compiles Go, the other waits on pip and gcc)
#   4. cloud-init's JSON schema, taken from Debian's cloud-init package
#   5. the test OpenID provider: node's oidc-provider at package-lock.json's versions (npm ci), keyed by its hash
# `setup.sh --image` also builds the golden guest image (tools/build-image.sh), beside 2 and 3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/paths.sh"

start=$(date +%s)
say() { echo "[setup +$(( $(date +%s) - start ))s] $*" >&2; }

# -- 1. Debian packages ---------------------------------------------------------
packages=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-daemon-driver-lxc libvirt-clients
          libvirt-dev pkg-config dnsmasq-base debootstrap e2fsprogs iproute2 util-linux
          openssh-client python3-venv gcc ovmf lvm2
          swtpm swtpm-tools                 # desktops' TPM 2.0 (libvirt runs swtpm and swtpm_setup)
          gdisk mtools dosfstools           # UEFI images: the GPT and the EFI system partition, made offline
          novnc chromium chromium-driver    # the browser console's web client; browser tests
          genisoimage)                      # kcli's cloud-init ISOs (make bench measures kcli beside vdesk)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -q "${missing[@]}" >&2
fi

# -- 3. Pulumi engine (in the background: a Go compile, beside the venv's pip and gcc) ----------
"$here/build-pulumi.sh" >/dev/null &
pulumi_build=$!
# With --image, the golden guest image too (debootstrap needs only step 1's packages): on a
# fresh machine the engine's modules download for minutes while the disk and a core are idle.
image_build=
if [ "${1:-}" = "--image" ]; then
    "$here/build-image.sh" >/dev/null &
    image_build=$!
fi

# -- 2. Python virtualenv --------------------------------------------------------------
if [ ! -f "$VDESK_VENV/.complete" ]; then
    say "creating virtualenv $VDESK_VENV (libvirt-python compiles against the system libvirt)"
    rm -rf "$VDESK_VENV"
    "${VDESK_BASE_PYTHON:-python3}" -m venv "$VDESK_VENV"
    # The exact pins (runtime and the test extra), not the ranges a user's own project installs.
    deps=$("$VDESK_VENV/bin/python" -c 'import tomllib,sys; print("\n".join(tomllib.load(open(sys.argv[1],"rb"))["tool"]["vdesk"]["pinned"]))' "$repo/pyproject.toml")
    "$VDESK_VENV/bin/python" -m pip install -q --disable-pip-version-check $deps >&2
    touch "$VDESK_VENV/.complete"
fi

wait "$pulumi_build" || { echo "setup: building the Pulumi engine failed (see above)" >&2; exit 1; }
if [ -n "$image_build" ]; then
    wait "$image_build" || { echo "setup: building the golden guest image failed (see above)" >&2; exit 1; }
fi

# -- 4. cloud-init schema ------------------------------------------------------------------
PYTHONPATH="$repo" "$VDESK_VENV/bin/python" -m components.cloudinit.schema --ensure >/dev/null

# -- 5. the test OpenID provider (tests/support/oidc_provider: the portal's OIDC tests start it) -----------
if ! command -v npm >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    say "no Node.js 20 or later with npm (Debian 12's nodejs is 18: NodeSource's is): the OIDC tests will skip"
elif [ ! -f "$VDESK_OIDC_PROVIDER/.complete" ]; then
    say "installing the test OpenID provider into $VDESK_OIDC_PROVIDER (npm ci, the lockfile's versions)"
    rm -rf "$VDESK_OIDC_PROVIDER"
    mkdir -p "$VDESK_OIDC_PROVIDER"
    cp "$repo/tests/support/oidc_provider/package.json" "$repo/tests/support/oidc_provider/package-lock.json" \
        "$VDESK_OIDC_PROVIDER/"
    (cd "$VDESK_OIDC_PROVIDER" && npm ci --no-audit --no-fund --loglevel=error >&2)
    touch "$VDESK_OIDC_PROVIDER/.complete"
fi
say "ready"
