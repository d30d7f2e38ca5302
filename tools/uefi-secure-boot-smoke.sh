#!/usr/bin/env bash
# Boot-test a UEFI image (recipe firmware: uefi) under plain qemu (TCG), no libvirt:
# is Secure Boot really enforced at every step of its chain?
#
#   tools/uefi-secure-boot-smoke.sh [IMAGE_DIR]
#
# IMAGE_DIR defaults to the image of the recipe {"firmware": "uefi"}; it must be built.
# Three boots, each on OVMF_CODE_4M.ms.fd (SMM) with a fresh copy of
# OVMF_VARS_4M.ms.fd (Microsoft's keys enrolled, Secure Boot on), watched on the
# serial console:
#   1. the image as built, with a TPM 2.0 (swtpm): the kernel must say
#      "secureboot: Secure boot enabled" and the console must reach "login:";
#   2. the same disk with shim's signature stripped from EFI/BOOT/BOOTX64.EFI:
#      the firmware must refuse it ("Access Denied") and no kernel may start;
#   3. the signed shim with GRUB's signature stripped from EFI/BOOT/grubx64.efi:
#      shim must refuse GRUB ("Security Violation") and no kernel may start.
# Holds /tmp/vdesk-guests.lock while guests run (every guest-booting run does).
# Exits non-zero when any boot does not behave; the serial logs are kept then.
# Env: SMOKE_TIMEOUT (s, default 600, for boot 1), SMOKE_KEEP=1 (keep the work directory).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMG=${1:-$(echo '{"firmware": "uefi"}' | "$HERE/build-image.sh" --recipe - --print-path)}
CODE=/usr/share/OVMF/OVMF_CODE_4M.ms.fd
VARS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
TIMEOUT=${SMOKE_TIMEOUT:-600}
[ -s "$IMG/disk.qcow2" ] && grep -q '"boot": "uefi"' "$IMG/manifest.json" || {
    echo "no UEFI image in $IMG (build it: echo '{\"firmware\": \"uefi\"}' | tools/build-image.sh --recipe -)" >&2
    exit 2
}
for tool in qemu-system-x86_64 qemu-img swtpm mcopy python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/vdesk-uefi-smoke.XXXXXX")
failed=0
finish() {
    [ ! -s "$W/swtpm.pid" ] || kill "$(cat "$W/swtpm.pid")" 2>/dev/null || true
    if [ "$failed" != 0 ] || [ "${SMOKE_KEEP:-0}" = 1 ]; then
        echo "work directory (serial logs) kept: $W" >&2
    else
        rm -rf "$W"
    fi
}
trap finish EXIT

# A copy of an EFI binary without its Authenticode signatures (the certificate table is the file's tail).
strip_signature() {
    python3 - "$1" "$2" <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
pe = struct.unpack_from("<I", d, 0x3C)[0]
table = pe + 24 + (112 if struct.unpack_from("<H", d, pe + 24)[0] == 0x20B else 96) + 8 * 4
offset, size = struct.unpack_from("<II", d, table)
assert size and offset + size == len(d), "the signatures are not at the end of the file"
struct.pack_into("<II", d, table, 0, 0)
open(sys.argv[2], "wb").write(bytes(d[:offset]))
EOF
}

# boot NAME DRIVE SECONDS PATTERN [tpm]: run until PATTERN is on the serial console (or SECONDS pass).
boot() {
    local name=$1 drive=$2 secs=$3 pattern=$4 tpm=${5:-} extra=() start q
    cp "$VARS" "$W/vars-$name.fd"
    if [ -n "$tpm" ]; then
        mkdir -p "$W/tpm"
        swtpm socket --tpm2 --tpmstate dir="$W/tpm" --ctrl type=unixio,path="$W/swtpm.sock" \
            --pid file="$W/swtpm.pid" --daemon
        extra=(-chardev "socket,id=chrtpm,path=$W/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
               -device tpm-crb,tpmdev=tpm0)
    fi
    start=$(date +%s)
    qemu-system-x86_64 -machine q35,smm=on,accel=tcg -m 1024 -smp 2 \
        -global driver=cfi.pflash01,property=secure,value=on \
        -drive "if=pflash,format=raw,unit=0,file=$CODE,readonly=on" \
        -drive "if=pflash,format=raw,unit=1,file=$W/vars-$name.fd" \
        -drive "$drive,if=virtio" "${extra[@]}" \
        -nic none -display none -monitor none -serial "file:$W/serial-$name.log" &
    q=$!
    while kill -0 "$q" 2>/dev/null && [ $(($(date +%s) - start)) -lt "$secs" ]; do
        grep -a -q -E "$pattern" "$W/serial-$name.log" 2>/dev/null && break
        sleep 1
    done
    kill "$q" 2>/dev/null || true
    wait "$q" 2>/dev/null || true
    if [ -n "$tpm" ] && [ -s "$W/swtpm.pid" ]; then kill "$(cat "$W/swtpm.pid")" 2>/dev/null || true; fi
    ELAPSED=$(($(date +%s) - start))
}

expect() { # NAME WHAT PATTERN [absent PATTERN]
    local name=$1 what=$2 want=$3 absent=${4:-}
    if grep -a -q -E "$want" "$W/serial-$name.log" && { [ -z "$absent" ] || ! grep -a -q -E "$absent" "$W/serial-$name.log"; }; then
        echo "PASS $name: $what (${ELAPSED} s)"
    else
        echo "FAIL $name: $what (${ELAPSED} s; serial log $W/serial-$name.log)"
        failed=1
    fi
}

# The ESP is partition 1 at 1 MiB (tools/image/firmware/uefi/disk.sh).
esp_mib=$(sed -n 's/^UEFI_ESP_MIB=\([0-9]*\)$/\1/p' "$HERE/image/firmware/uefi/disk.sh")
qemu-img create -q -f qcow2 -F qcow2 -b "$IMG/disk.qcow2" "$W/good.qcow2" 8G
qemu-img convert -O raw "$IMG/disk.qcow2" "$W/bad.raw"
dd if="$W/bad.raw" of="$W/esp.img" bs=1M skip=1 count="$esp_mib" status=none
export MTOOLS_SKIP_CHECK=1
mcopy -i "$W/esp.img" ::/EFI/BOOT/BOOTX64.EFI "$W/shim.efi"
mcopy -i "$W/esp.img" ::/EFI/BOOT/grubx64.efi "$W/grub.efi"
strip_signature "$W/shim.efi" "$W/shim-unsigned.efi"
strip_signature "$W/grub.efi" "$W/grub-unsigned.efi"

exec 9>/tmp/vdesk-guests.lock
flock 9
echo "holding /tmp/vdesk-guests.lock; image $IMG"

boot signed "format=qcow2,file=$W/good.qcow2" "$TIMEOUT" "login:" tpm
expect signed "shim, GRUB and the kernel verified: the kernel says Secure Boot is enabled" \
    "secureboot: Secure boot enabled"
expect signed "the kernel is locked down" "Kernel is locked down from EFI Secure Boot"
expect signed "the TPM is found" "tpm_crb MSFT0101"
expect signed "the console reaches login" "login:"

mcopy -o -i "$W/esp.img" "$W/shim-unsigned.efi" ::/EFI/BOOT/BOOTX64.EFI
dd if="$W/esp.img" of="$W/bad.raw" bs=1M seek=1 conv=notrunc status=none
boot unsigned-shim "format=raw,file=$W/bad.raw" 300 "Access Denied|Linux version"
expect unsigned-shim "the firmware refuses an unsigned shim" "failed to load Boot[0-9A-F]+ .UEFI Misc Device.*Access Denied" "Linux version"

mcopy -o -i "$W/esp.img" "$W/shim.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -o -i "$W/esp.img" "$W/grub-unsigned.efi" ::/EFI/BOOT/grubx64.efi
dd if="$W/esp.img" of="$W/bad.raw" bs=1M seek=1 conv=notrunc status=none
boot unsigned-grub "format=raw,file=$W/bad.raw" 300 "Security Violation|Linux version"
expect unsigned-grub "shim refuses an unsigned GRUB" "Verification failed: \(0x1A\) Security Violation" "Linux version"

exit "$failed"
