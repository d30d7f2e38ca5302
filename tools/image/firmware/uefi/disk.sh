# shellcheck shell=bash
# Sourced by tools/build-image.sh for a recipe with firmware "uefi": lays out
# the image's disk as a GPT disk that boots under UEFI with Secure Boot on,
# offline (no loop partitions, no device-mapper, no mounts):
#
#   partition 1  EFI system partition, FAT32, UEFI_ESP_MIB MiB at 1 MiB:
#                  EFI/BOOT/BOOTX64.EFI  Debian's shim, signed by Microsoft's UEFI CA
#                  EFI/BOOT/grubx64.efi  Debian's GRUB, signed by Debian (shim checks it)
#                  EFI/BOOT/mmx64.efi    shim's MOK manager (signed by Debian)
#                  EFI/BOOT/grub.cfg, EFI/debian/grub.cfg   boot the root's kernel
#   partition 2  the ext4 root (Linux x86-64 root type), the rest of the disk
#
# There is deliberately no fbx64.efi: shim would run the fallback loader, which
# writes boot entries and resets. GRUB verifies the kernel through shim (signed
# by Debian); the filesystems are made from directories (mkfs.ext4 -d, mtools)
# and placed with dd at their partitions' offsets.

UEFI_ESP_MIB=128

# make_uefi_disk ROOTFS RAW DISK_BYTES KVER WORKDIR: writes /etc/fstab into
# ROOTFS, then RAW; sets UEFI_ROOT_UUID, UEFI_ESP_ID, UEFI_CMDLINE, UEFI_ROOT_START.
make_uefi_disk() {
    local R=$1 raw=$2 bytes=$3 kver=$4 work=$5
    local shim=$R/usr/lib/shim/shimx64.efi.signed
    local mm=$R/usr/lib/shim/mmx64.efi.signed
    local grub=$R/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
    local f
    for f in "$shim" "$mm" "$grub"; do
        [ -s "$f" ] || die "UEFI image: ${f#"$R"} is missing (shim-signed, grub-efi-amd64-signed)"
    done
    [ ! -e "$R/usr/lib/shim/fbx64.efi.signed" ] || log "  (leaving shim's fallback loader out of the ESP)"

    UEFI_ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
    UEFI_ESP_ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n' | tr a-f A-F)
    local esp_fs_id=${UEFI_ESP_ID:0:4}-${UEFI_ESP_ID:4:4}
    UEFI_CMDLINE="root=UUID=$UEFI_ROOT_UUID rw rootfstype=ext4 console=tty0 console=ttyS0,115200n8 quiet"

    mkdir -p "$R/boot/efi"
    cat >"$R/etc/fstab" <<FSTAB
# vdesk UEFI image: the root is partition 2 of a GPT disk, the EFI system
# partition is partition 1 (GRUB and shim live there; nothing writes to it).
UUID=$UEFI_ROOT_UUID  /          ext4  defaults,errors=remount-ro  0  1
UUID=$esp_fs_id       /boot/efi  vfat  umask=0077,nofail           0  0
FSTAB

    # The kernel: the root's /vmlinuz and /initrd.img links (Debian keeps them
    # pointing at the newest kernel), else the files of this kernel version.
    local vmlinuz=/boot/vmlinuz-$kver initrd=/boot/initrd.img-$kver
    [ -L "$R/vmlinuz" ] && [ -L "$R/initrd.img" ] && vmlinuz=/vmlinuz initrd=/initrd.img
    local cfg=$work/grub.cfg
    cat >"$cfg" <<GRUB
# vdesk UEFI image: shim (BOOTX64.EFI) -> GRUB (grubx64.efi, checked by shim)
# -> Debian's signed kernel on the ext4 root (checked by GRUB through shim).
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=0
set default=0
search --no-floppy --fs-uuid --set=root $UEFI_ROOT_UUID
menuentry 'Debian GNU/Linux (vdesk, kernel $kver)' {
    echo 'vdesk: loading the kernel'
    linux $vmlinuz $UEFI_CMDLINE
    initrd $initrd
}
GRUB

    log "laying out a GPT disk: ESP ${UEFI_ESP_MIB} MiB (shim, GRUB), ext4 root (uuid $UEFI_ROOT_UUID)"
    truncate -s "$bytes" "$raw"
    run "writing the partition table" sgdisk --clear \
        --new=1:1MiB:+${UEFI_ESP_MIB}MiB --typecode=1:ef00 --change-name=1:EFI \
        --new=2:0:0 --typecode=2:8304 --change-name=2:root "$raw"
    local info first last
    info=$(sgdisk --info=2 "$raw")
    first=$(printf '%s\n' "$info" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
    last=$(printf '%s\n' "$info" | sed -n 's/^Last sector: \([0-9]*\).*/\1/p')
    [ -n "$first" ] && [ -n "$last" ] || die "cannot read partition 2 from sgdisk: $info"
    [ $((first % 2048)) = 0 ] || die "the root partition does not start on a MiB boundary (sector $first)"
    UEFI_ROOT_START=$((first * 512))

    log "making the ESP (FAT32) with mtools"
    local esp=$work/esp.img
    run "making the ESP" mkfs.vfat -F 32 -n EFI -i "$UEFI_ESP_ID" -C "$esp" $((UEFI_ESP_MIB * 1024))
    local m=(env MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null)
    run "filling the ESP" "${m[@]}" mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
    run "filling the ESP" "${m[@]}" mcopy -i "$esp" "$shim" ::/EFI/BOOT/BOOTX64.EFI
    run "filling the ESP" "${m[@]}" mcopy -i "$esp" "$grub" ::/EFI/BOOT/grubx64.efi
    run "filling the ESP" "${m[@]}" mcopy -i "$esp" "$mm" ::/EFI/BOOT/mmx64.efi
    run "filling the ESP" "${m[@]}" mcopy -i "$esp" "$cfg" ::/EFI/BOOT/grub.cfg
    run "filling the ESP" "${m[@]}" mcopy -i "$esp" "$cfg" ::/EFI/debian/grub.cfg
    "${m[@]}" mdir -/ -i "$esp" ::/ >>"$LOGF" 2>&1 || true
    run "placing the ESP" dd if="$esp" of="$raw" bs=1M seek=1 conv=notrunc status=none
    rm -f "$esp"

    log "making the ext4 root ($(((last - first + 1) / 2048)) MiB) and placing it at sector $first"
    local root=$work/root.img
    truncate -s $(((last - first + 1) * 512)) "$root"
    run "making the filesystem" mkfs.ext4 -q -F -L vdesk-root -U "$UEFI_ROOT_UUID" \
        -E lazy_itable_init=0,lazy_journal_init=0 -d "$R" "$root"
    run "checking the filesystem" e2fsck -f -n "$root"
    run "placing the root" dd if="$root" of="$raw" bs=1M seek=$((first / 2048)) conv=notrunc,sparse status=none
    rm -f "$root"
    run "checking the partition table" sgdisk --verify "$raw"
}
