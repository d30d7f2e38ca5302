#!/usr/bin/env bash
# Build (or find) a vdesk guest image from a recipe: Debian 12 (bookworm) amd64,
# made from Debian packages with debootstrap.
#
#   tools/build-image.sh [--recipe FILE]               build if missing; the image
#                            directory is the LAST line of stdout (progress: stderr)
#   tools/build-image.sh [--recipe FILE] --print-path  print the image directory, never build
#   tools/build-image.sh [--recipe FILE] --print-hash  print the recipe hash
#
# A recipe is a JSON object (FILE "-": stdin), e.g.
#   {"base": "debian12", "desktop": "xfce", "packages": ["git"],
#    "locale": "de_DE.UTF-8", "keyboard": "de", "timezone": "Europe/Berlin",
#    "firmware": "uefi"}
# Missing fields take their defaults; no recipe at all is the console image
# (desktop "none"), i.e. the golden debian12 image. tools/image/recipe.py
# reads recipes (fields, defaults, package lists, hash).
#
# The image directory is $VDESK_CACHE/images/<name>-<recipe hash>/ (name:
# debian12, or debian12-<desktop>, with -uefi for firmware "uefi") with
#   disk.qcow2     firmware "bios": unpartitioned ext4 root filesystem
#                  (root=/dev/vda); "uefi": a GPT disk with an EFI system
#                  partition (shim, GRUB) and the ext4 root as partition 2
#                  (tools/image/firmware/uefi/disk.sh); 4 GiB virtual, grown by
#                  cloud-init (growpart, resize_rootfs) on boot when the
#                  virtual disk is made bigger
#   vmlinuz        kernel for direct kernel boot (firmware "bios" only)
#   initrd.img     its initramfs (virtio_pci, virtio_blk, ext4) ("bios" only)
#   manifest.json  name, recipe_hash, recipe, desktop, built_at, build_seconds,
#                  disk_virtual_bytes, disk_file_bytes, kernel_version,
#                  firmware, boot (kernel | uefi), kernel_cmdline (what the
#                  hypervisor must pass; for uefi what GRUB passes),
#                  cloud_init_version, layer (the base layer key), layer_reused,
#                  packages ["name=version", ...], ...
#
# Recipe hash: the first 12 hex digits of sha256 over the `sha256sum` lines of
# tools/build-image.sh and of every file under tools/image/ (other desktop
# environments' and firmwares' folders aside), sorted by path relative to tools/, and the
# canonical recipe (so a changed name, content or recipe means a new image).
#
# Environment:
#   VDESK_CACHE                   cache root (default ${XDG_CACHE_HOME:-~/.cache}/vdesk)
#   VDESK_DEBIAN_MIRROR           build-time mirror (default http://deb.debian.org/debian)
#   VDESK_DEBIAN_SECURITY_MIRROR  build-time security mirror
#                                 (default http://deb.debian.org/debian-security)
#   VDESK_BUILD_VERBOSE=1         stream debootstrap/apt output to stderr
#
# A build is two steps: the base layer (debootstrap minbase, the overlays, debconf,
# apt-get dist-upgrade and the base package list: everything the recipe's own
# packages, locale, keyboard and time zone leave alone), cached in
# $VDESK_CACHE/images/.layers/<key>/, and on top of it, under an overlay mount,
# the recipe's packages, customize.sh, the clean-up and the disk. Every build
# takes both steps, so a recipe that gains a package reuses the layer and
# installs only that package, and ends where a build from scratch ends.
#
# Building needs root (debootstrap, chroot, mounts). Builds are serialised by a
# flock on $VDESK_CACHE/images/.build.lock, happen in private mount+PID namespaces
# inside $VDESK_CACHE/images/.tmp-*, and the result is renamed into place only
# when complete. Downloaded .debs are kept in $VDESK_CACHE/apt-archives.
set -euo pipefail

ARCH=amd64
DISK_BYTES=$((4 * 1024 * 1024 * 1024))
# quiet: the kernel's and systemd's messages are not drawn on the consoles (on an
# emulated CPU each line costs, most on a framebuffer); the journal has them all.
KERNEL_CMDLINE="root=/dev/vda rw rootfstype=ext4 console=tty0 console=ttyS0,115200n8 quiet"
BUILD_MIRROR=${VDESK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILD_SECURITY_MIRROR=${VDESK_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What the guest's own apt uses after boot.
GUEST_MIRROR=http://deb.debian.org/debian
GUEST_SECURITY_MIRROR=http://deb.debian.org/debian-security

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$TOOLS_DIR/build-image.sh
RECIPE_DIR=$TOOLS_DIR/image
CACHE=${VDESK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vdesk}
case $CACHE in /*) ;; *) CACHE=$PWD/$CACHE ;; esac
IMAGES=$CACHE/images
DEB_CACHE=$CACHE/apt-archives
# Base layers: minbase + overlays + debconf + the base package list, one tree per
# layer key (tools/image/recipe.py layer_key, and the build mirrors), reused
# read-only under an overlay by every build with that key. The most recently
# used LAYERS_KEPT are kept; one older than LAYER_MAX_AGE_DAYS is built anew
# (its package index would be stale).
LAYERS=$IMAGES/.layers
LAYERS_KEPT=${VDESK_IMAGE_LAYERS_KEPT:-4}
LAYER_MAX_AGE_DAYS=${VDESK_IMAGE_LAYER_MAX_AGE_DAYS:-7}

START=${VDESK_BUILD_START:-$(date +%s)}

log() { printf '[build-image %4ds] %s\n' "$(($(date +%s) - START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The recipe, read by tools/image/recipe.py into R_JSON, R_HASH, R_NAME,
# R_SUITE, R_DESKTOP, R_PACKAGES, R_LOCALE, R_XKB_LAYOUT, R_XKB_VARIANT, R_TIMEZONE, R_FIRMWARE.
load_recipe() {
    local file=$1 vars
    vars=$(python3 "$RECIPE_DIR/recipe.py" shell ${file:+"$file"}) || die "cannot read the recipe ${file:-(default)}"
    eval "$vars"
    NAME=$R_NAME
    SUITE=$R_SUITE
    HASH=$R_HASH
    DESKTOP_DIR=$RECIPE_DIR/desktops/$R_DESKTOP
    FIRMWARE=$R_FIRMWARE
    FIRMWARE_DIR=$RECIPE_DIR/firmware/$R_FIRMWARE
    LAYER_KEY=$(printf '%s\n' "$R_LAYER" "$BUILD_MIRROR" "$BUILD_SECURITY_MIRROR" | sha256sum | cut -c1-16)
}

# A directory is a finished image when all artefacts are there and the
# manifest (written last, before the atomic rename) names this recipe.
image_ok() {
    local d=$1
    [ -s "$d/disk.qcow2" ] && [ -s "$d/manifest.json" ] &&
        { [ "$FIRMWARE" = uefi ] || { [ -s "$d/vmlinuz" ] && [ -s "$d/initrd.img" ]; }; } &&
        grep -q "\"recipe_hash\": \"$HASH\"" "$d/manifest.json"
}

usage() { sed -n '2,18p' "$SELF" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------
# inner build: runs in private mount and PID namespaces (see outer_build), so
# every mount and process it makes disappears with it, however it ends.
# ---------------------------------------------------------------------------
inner_build() {
    local tmp=$1
    local R=$tmp/rootfs out=$tmp/out LOGF=$tmp/build.log
    mkdir -p "$R" "$out"

    # Run a command with its output in the build log (or streamed), and a
    # heartbeat on stderr while it takes long.
    run() {
        local what=$1 rc=0 tick
        shift
        (
            exec 9>&-
            trap 'kill "$s" 2>/dev/null; exit 0' TERM
            while :; do
                sleep 30 </dev/null >/dev/null 2>&1 &
                s=$!
                wait "$s"
                log "  ... still $what"
            done
        ) 9>&- &
        tick=$!
        if [ "${VDESK_BUILD_VERBOSE:-0}" = 1 ]; then
            "$@" 2>&1 | tee -a "$LOGF" >&2 || rc=$?
        else
            "$@" >>"$LOGF" 2>&1 || rc=$?
        fi
        kill "$tick" 2>/dev/null || true
        wait "$tick" 2>/dev/null || true
        [ "$rc" = 0 ] || die "$what failed (exit $rc); see the build log"
    }
    in_chroot() {
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
            DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
            chroot "$R" "$@"
    }
    local APT_OPTS=(-y -q -o Acquire::Languages=none -o Dpkg::Options::=--force-confold
        -o Dpkg::Options::=--force-confdef -o APT::Install-Recommends=false)

    chroot_mounts() {
        mount -t proc proc "$R/proc"
        mount -t sysfs sysfs "$R/sys"
        mount --rbind /dev "$R/dev"
        mount --bind "$DEB_CACHE" "$R/var/cache/apt/archives"
    }

    # --- the base layer: built once per layer key ---------------------------
    local layer=$LAYERS/$LAYER_KEY layer_reused=true
    if [ -s "$layer/layer.json" ] && [ -n "$(find "$layer/layer.json" -mtime -"$LAYER_MAX_AGE_DAYS")" ]; then
        log "reusing base layer $LAYER_KEY (minbase + base packages)"
    else
        layer_reused=false
        build_layer "$tmp/layer"
        mkdir -p "$LAYERS"
        [ ! -e "$layer" ] || mv -T "$layer" "$tmp/stale-layer"   # too old, or a leftover
        mv -T "$tmp/layer" "$layer"
    fi
    touch "$layer"       # most recently used: pruning keeps it

    # --- the recipe's own part, on top of the layer (which stays untouched) ---
    mkdir -p "$tmp/upper" "$tmp/overlay-work"
    mount -t overlay overlay -o "lowerdir=$layer/rootfs,upperdir=$tmp/upper,workdir=$tmp/overlay-work" "$R"
    chroot_mounts
    # The layer's resolv.conf points at systemd-resolved, which does not run in a chroot: the
    # host's, for the downloads (the clean-up below puts the link back).
    rm -f "$R/etc/resolv.conf"
    cp /etc/resolv.conf "$R/etc/resolv.conf"
    if [ -n "$R_DELTA_PACKAGES" ]; then
        log "installing on top of the base layer:$(printf ' %s' $R_DELTA_PACKAGES)"
        # shellcheck disable=SC2086
        run "installing the recipe's packages" in_chroot apt-get "${APT_OPTS[@]}" install $R_DELTA_PACKAGES
    fi

    log "customizing (tools/image/customize.sh: locale $R_LOCALE, keyboard $R_XKB_LAYOUT${R_XKB_VARIANT:+($R_XKB_VARIANT)}, time zone $R_TIMEZONE)"
    local script
    for script in "$RECIPE_DIR/customize.sh" "$DESKTOP_DIR/customize.sh"; do
        [ -f "$script" ] || continue
        [ "$script" = "$RECIPE_DIR/customize.sh" ] || log "customizing (${script#"$TOOLS_DIR/"})"
        install -m 0755 "$script" "$R/tmp/vdesk-customize.sh"
        run "running ${script#"$TOOLS_DIR/"}" in_chroot env VDESK_LOCALE="$R_LOCALE" \
            VDESK_XKB_LAYOUT="$R_XKB_LAYOUT" VDESK_XKB_VARIANT="$R_XKB_VARIANT" VDESK_TIMEZONE="$R_TIMEZONE" \
            /bin/sh -x /tmp/vdesk-customize.sh
        rm -f "$R/tmp/vdesk-customize.sh"
    done

    # --- collect facts and the boot files -------------------------------------
    local kver
    kver=$(ls "$R/lib/modules")
    [ "$(printf '%s\n' "$kver" | wc -l)" = 1 ] || die "expected one kernel, found: $kver"
    [ -s "$R/boot/vmlinuz-$kver" ] && [ -s "$R/boot/initrd.img-$kver" ] ||
        die "kernel or initrd missing for $kver"
    local m
    in_chroot lsinitramfs "/boot/initrd.img-$kver" >"$tmp/initrd.list"
    for m in virtio_pci virtio_blk ext4; do
        grep -q "/$m\.ko" "$R/lib/modules/$kver/modules.builtin" "$tmp/initrd.list" ||
            die "initramfs lacks $m"
    done
    if [ "$FIRMWARE" != uefi ]; then   # a UEFI image's kernel stays inside it (GRUB loads it)
        cp "$R/boot/vmlinuz-$kver" "$out/vmlinuz"
        cp "$R/boot/initrd.img-$kver" "$out/initrd.img"
    fi
    local ci_version pkglist
    ci_version=$(in_chroot dpkg-query -W -f='${Version}' cloud-init)
    pkglist=$(in_chroot dpkg-query -W -f='${Package}=${Version}\n' | LC_ALL=C sort)

    # --- make it a template: nothing instance-specific may stay ---------------
    log "cleaning the image for first boot"
    umount "$R/var/cache/apt/archives"
    cat >"$R/etc/apt/sources.list" <<EOF
deb $GUEST_MIRROR $SUITE main
deb $GUEST_MIRROR $SUITE-updates main
deb $GUEST_SECURITY_MIRROR $SUITE-security main
EOF
    in_chroot apt-get clean
    rm -rf "$R"/var/lib/apt/lists/*
    in_chroot cloud-init clean --logs
    rm -f "$R/usr/sbin/policy-rc.d"
    rm -f "$R"/etc/ssh/ssh_host_*
    : >"$R/etc/machine-id"
    rm -f "$R/var/lib/dbus/machine-id"
    ln -sfn ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
    rm -f "$R"/var/cache/debconf/*-old "$R"/var/lib/dpkg/*-old
    find "$R/var/log" -type f -delete
    rm -rf "${R:?}"/tmp/* "${R:?}"/var/tmp/* "$R/root/.bash_history"

    umount -R "$R/dev" "$R/sys" "$R/proc"
    # The template invariants, checked rather than assumed.
    [ -z "$(find "$R/etc/ssh" -name 'ssh_host_*' -print -quit)" ] || die "ssh host keys left"
    [ -f "$R/etc/machine-id" ] && [ ! -s "$R/etc/machine-id" ] || die "/etc/machine-id not empty"
    [ ! -e "$R/var/lib/dbus/machine-id" ] || die "/var/lib/dbus/machine-id left"
    [ -z "$(ls -A "$R/var/lib/cloud" 2>/dev/null)" ] || die "/var/lib/cloud not clean"
    grep -qx "LANG=$R_LOCALE" "$R/etc/default/locale" || die "default locale not set"
    if awk -v r="$R" 'index($2, r "/") == 1' /proc/self/mounts | grep -q .; then   # $R: the overlay
        die "something is still mounted under $R"
    fi

    # --- filesystem image → qcow2 ---------------------------------------------
    local raw=$tmp/root.raw cmdline=$KERNEL_CMDLINE root_device=/dev/vda boot=kernel
    if [ "$FIRMWARE" = uefi ]; then
        # shellcheck source=image/firmware/uefi/disk.sh
        . "$FIRMWARE_DIR/disk.sh"
        make_uefi_disk "$R" "$raw" "$DISK_BYTES" "$kver" "$tmp"
        cmdline=$UEFI_CMDLINE root_device=/dev/vda2 boot=uefi
    else
        log "making the ext4 filesystem ($((DISK_BYTES / 1024 / 1024)) MiB, sparse)"
        truncate -s "$DISK_BYTES" "$raw"
        # Inode tables and journal are written now (as zeros, which the qcow2 does
        # not store) so the guest's kernel has no lazy-init work on a slow CPU.
        run "making the filesystem" mkfs.ext4 -q -F -L vdesk-root \
            -E lazy_itable_init=0,lazy_journal_init=0 -d "$R" "$raw"
        run "checking the filesystem" e2fsck -f -n "$raw"
    fi
    umount "$R"
    rm -rf --one-file-system "$tmp/upper" "$tmp/overlay-work"
    log "converting to qcow2"
    run "converting to qcow2" qemu-img convert -f raw -O qcow2 "$raw" "$out/disk.qcow2"
    rm -f "$raw"

    # --- manifest (last: its presence marks a complete image) -----------------
    local vbytes fbytes now
    vbytes=$(qemu-img info --output=json "$out/disk.qcow2" |
        sed -n 's/^ *"virtual-size": \([0-9]*\),*$/\1/p')
    fbytes=$(stat -c %s "$out/disk.qcow2")
    now=$(date +%s)
    {
        printf '{\n'
        printf '  "name": "%s",\n' "$NAME"
        printf '  "recipe_hash": "%s",\n' "$HASH"
        printf '  "recipe": %s,\n' "$R_JSON"
        printf '  "desktop": "%s",\n' "$R_DESKTOP"
        printf '  "built_at": "%s",\n' "$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)"
        printf '  "build_seconds": %d,\n' "$((now - START))"
        printf '  "suite": "%s",\n' "$SUITE"
        printf '  "arch": "%s",\n' "$ARCH"
        printf '  "disk_format": "qcow2",\n'
        printf '  "disk_virtual_bytes": %d,\n' "$vbytes"
        printf '  "disk_file_bytes": %d,\n' "$fbytes"
        printf '  "firmware": "%s",\n' "$FIRMWARE"
        printf '  "boot": "%s",\n' "$boot"
        printf '  "root_device": "%s",\n' "$root_device"
        printf '  "kernel_version": "%s",\n' "$kver"
        printf '  "kernel_cmdline": "%s",\n' "$cmdline"
        printf '  "cloud_init_version": "%s",\n' "$ci_version"
        printf '  "layer": "%s",\n' "$LAYER_KEY"
        printf '  "layer_reused": %s,\n' "$layer_reused"
        printf '  "packages": [\n'
        printf '%s\n' "$pkglist" | sed -e 's/.*/    "&",/' -e '$ s/,$//'
        printf '  ]\n'
        printf '}\n'
    } >"$out/manifest.json.new"
    mv "$out/manifest.json.new" "$out/manifest.json"
    log "image complete: $(numfmt --to=iec "$fbytes") qcow2, kernel $kver, cloud-init $ci_version, boot $boot"

    # Publish (atomic rename on the same filesystem). Done here rather than by
    # the caller so that a build whose caller was killed still lands.
    [ ! -e "$OUT" ] || mv -T "$OUT" "$tmp/stale-image" # an invalid leftover
    mv -T "$out" "$OUT"
    prune_layers
}

# build_layer DIR: DIR/rootfs becomes the base layer of this recipe (see LAYERS);
# DIR/layer.json, written last, says what it holds. Runs inside inner_build
# (its run, in_chroot and chroot_mounts, on this R).
build_layer() {
    local dir=$1
    local R=$dir/rootfs
    mkdir -p "$R"
    log "debootstrap $SUITE/$ARCH (minbase) from $BUILD_MIRROR (base layer $LAYER_KEY)"
    run "running debootstrap" debootstrap --variant=minbase --arch="$ARCH" \
        --components=main --cache-dir="$DEB_CACHE" "$SUITE" "$R" "$BUILD_MIRROR"

    log "preparing the chroot"
    chroot_mounts
    cat >"$R/etc/apt/sources.list" <<EOF
deb $BUILD_MIRROR $SUITE main
deb $BUILD_MIRROR $SUITE-updates main
deb $BUILD_SECURITY_MIRROR $SUITE-security main
EOF
    # No service may start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
    chmod 0755 "$R/usr/sbin/policy-rc.d"
    # Recipe files, installed before the packages so that dpkg path filters,
    # initramfs and cloud-init settings are in force when they install.
    # The firmware's overlay comes second, the desktop environment's last: its files win.
    local f rel mode overlay
    for overlay in "$RECIPE_DIR/overlay" "$FIRMWARE_DIR/overlay" "$DESKTOP_DIR/overlay"; do
        [ -d "$overlay" ] || continue
        while IFS= read -r f; do
            rel=${f#"$overlay/"}
            mode=0644
            [ -x "$f" ] && mode=0755
            install -D -o root -g root -m "$mode" "$f" "$R/$rel"
        done < <(find "$overlay" -type f | LC_ALL=C sort)
    done
    in_chroot debconf-set-selections <"$RECIPE_DIR/debconf.txt"
    [ ! -f "$DESKTOP_DIR/debconf.txt" ] || in_chroot debconf-set-selections <"$DESKTOP_DIR/debconf.txt"

    log "apt-get update + dist-upgrade"
    run "running apt-get update" in_chroot apt-get "${APT_OPTS[@]}" update
    run "running apt-get dist-upgrade" in_chroot apt-get "${APT_OPTS[@]}" dist-upgrade
    log "installing the base packages:$(printf ' %s' $R_BASE_PACKAGES)"
    # shellcheck disable=SC2086
    run "installing the base packages" in_chroot apt-get "${APT_OPTS[@]}" install $R_BASE_PACKAGES
    umount "$R/var/cache/apt/archives"
    umount -R "$R/dev" "$R/sys" "$R/proc"
    printf '{"layer": "%s", "suite": "%s", "built_at": "%s", "packages": "%s"}\n' "$LAYER_KEY" "$SUITE" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$R_BASE_PACKAGES" >"$dir/layer.json"
}

# Keep the LAYERS_KEPT most recently used base layers (runs under the build lock).
prune_layers() {
    local old
    [ -d "$LAYERS" ] || return 0
    while IFS= read -r old; do
        log "removing base layer ${old##*/} (not used recently)"
        rm -rf --one-file-system -- "$old"
    done < <(find "$LAYERS" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | LC_ALL=C sort -rn |
        tail -n +"$((LAYERS_KEPT + 1))" | cut -d' ' -f2-)
}

ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    command -v qemu-img >/dev/null || missing+=(qemu-utils)
    { command -v mkfs.ext4 && command -v e2fsck; } >/dev/null || missing+=(e2fsprogs)
    command -v unshare >/dev/null || missing+=(util-linux)
    command -v python3 >/dev/null || missing+=(python3)
    if [ "$FIRMWARE" = uefi ]; then   # tools/image/firmware/uefi/disk.sh
        command -v sgdisk >/dev/null || missing+=(gdisk)
        command -v mcopy >/dev/null || missing+=(mtools)
        command -v mkfs.vfat >/dev/null || missing+=(dosfstools)
    fi
    [ ${#missing[@]} = 0 ] && return 0
    log "installing host tools: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

outer_build() {
    [ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, chroot, mounts)"
    mkdir -p "$IMAGES" "$DEB_CACHE/partial"
    exec 9>"$IMAGES/.build.lock"
    if ! flock -n 9; then
        log "another build holds $IMAGES/.build.lock; waiting for it"
        flock 9
    fi
    # We hold the lock, so any temp dir is the leftover of a killed build (its
    # mounts were in a mount namespace that died with it).
    local d
    for d in "$IMAGES"/.tmp-*; do
        [ -e "$d" ] || continue
        log "removing leftover $d"
        rm -rf --one-file-system -- "$d"
    done
    if image_ok "$OUT"; then
        log "image was built meanwhile by another invocation"
        echo "$OUT"
        return 0
    fi
    ensure_host_tools

    log "building $NAME image, recipe $HASH ($R_JSON), into $OUT"
    TMP=$(mktemp -d "$IMAGES/.tmp-$NAME-$HASH.XXXXXX")
    CHILD=
    trap outer_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # The build runs in private mount and PID namespaces: its mounts vanish
    # with it, and when it is stopped (unshare killed => --kill-child) every
    # process it started dies too, even ones that made their own session
    # (dpkg under apt's pty). setsid gives it a process group of its own.
    printf '%s\n' "$R_JSON" >"$TMP/recipe.json"
    VDESK_BUILD_START=$START \
        setsid unshare --mount --propagation private --pid --fork --kill-child \
        --mount-proc -- bash "$SELF" --recipe "$TMP/recipe.json" --inner-build "$TMP" &
    CHILD=$!
    wait "$CHILD"
    CHILD=

    image_ok "$OUT" || die "the build ended without an image in $OUT"
    rm -f "$IMAGES/$NAME-$HASH.failed.log"
    log "done"
    echo "$OUT"
}

outer_cleanup() {
    local rc=$?
    if [ -n "${CHILD:-}" ]; then
        # Stop every process of the build (its process group), then wait for
        # them to be gone before the temp dir is removed.
        kill -TERM -- "-$CHILD" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 -- "-$CHILD" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    if [ "$rc" != 0 ] && [ -s "$TMP/build.log" ]; then
        cp "$TMP/build.log" "$IMAGES/$NAME-$HASH.failed.log"
        log "build FAILED; last lines of the log ($IMAGES/$NAME-$HASH.failed.log):"
        tail -n 40 "$TMP/build.log" >&2
    fi
    rm -rf --one-file-system -- "$TMP"
    [ -z "${RECIPE_TMP:-}" ] || rm -f "$RECIPE_TMP"
}

RECIPE_FILE=
if [ "${1:-}" = --recipe ]; then
    [ $# -ge 2 ] || { usage >&2; exit 2; }
    RECIPE_FILE=$2
    shift 2
    if [ "$RECIPE_FILE" = - ]; then # read once: the inner build reads it again from a file
        RECIPE_FILE=$(mktemp)
        RECIPE_TMP=$RECIPE_FILE
        trap 'rm -f "$RECIPE_TMP"' EXIT
        cat >"$RECIPE_FILE"
    fi
fi
load_recipe "$RECIPE_FILE"
OUT=$IMAGES/$NAME-$HASH

case "${1:-}" in
--print-path)
    echo "$OUT"
    ;;
--print-hash)
    echo "$HASH"
    ;;
--inner-build)
    inner_build "$2"
    ;;
-h | --help)
    usage
    ;;
"")
    if image_ok "$OUT"; then
        echo "$OUT"
    else
        outer_build
    fi
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
