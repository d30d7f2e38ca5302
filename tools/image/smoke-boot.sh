#!/usr/bin/env bash
# Boot-test a built vdesk golden image under qemu (TCG), no libvirt needed.
#
#   tools/image/smoke-boot.sh [IMAGE_DIR]
#
# IMAGE_DIR defaults to `tools/build-image.sh --print-path` (it must be built).
# The guest boots from a throw-away qcow2 overlay of SMOKE_DISK_GIB (default 8)
# GiB, i.e. bigger than the image, with direct kernel boot and the manifest's
# kernel_cmdline, a NoCloud seed (volid cidata) on a read-only virtio disk, and
# a virtio NIC on qemu user networking with restrict=on (no outside access; only
# a hostfwd from 127.0.0.1 to the guest's port 22) and a guest-agent channel.
#
# Passes when: cloud-init reaches "status: done" with no errors, the NIC got
# its address by DHCP through the MAC-matched network-config v2, sshd serves
# the ed25519 host key from user-data (checked over SSH with strict host key
# checking), qemu-guest-agent answers, and / was grown to the disk size.
# Prints measured timings; exits non-zero on failure (the work directory with
# serial.log is then kept and named).
#
# Env: SMOKE_KEEP=1 (keep the work directory), SMOKE_TIMEOUT (s, default 900), SMOKE_DISK_GIB (default 8),
#      SMOKE_SMP (default 2), SMOKE_MEM_MIB (default 1024),
#      SMOKE_SET_NAME=eth0 (add set-name to the network-config's MAC match).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMG=${1:-$("$HERE/../build-image.sh" --print-path)}
TIMEOUT=${SMOKE_TIMEOUT:-900}
DISK_GIB=${SMOKE_DISK_GIB:-8}
MAC=52:54:00:5d:0e:01

t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[smoke %6ss] %s\n' "$(elapsed)" "$*" >&2; }

for f in disk.qcow2 vmlinuz initrd.img manifest.json; do
    [ -s "$IMG/$f" ] || { say "no $IMG/$f (build it with tools/build-image.sh)"; exit 2; }
done
for c in qemu-system-x86_64 qemu-img genisoimage ssh ssh-keygen python3; do
    command -v "$c" >/dev/null || { say "missing tool: $c"; exit 2; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/vdesk-smoke.XXXXXX")
QPID=
ok=0
finish() {
    if [ -n "$QPID" ]; then
        kill "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
    fi
    if [ "$ok" = 1 ] && [ "${SMOKE_KEEP:-0}" != 1 ]; then
        rm -rf "$W"
    elif [ "$ok" = 1 ]; then
        say "work directory kept: $W"
    else
        say "FAILED; work directory kept: $W (serial.log, qemu.log)"
        [ -f "$W/serial.log" ] && tail -n 40 "$W/serial.log" >&2
    fi
}
trap finish EXIT

CMDLINE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_cmdline"])' "$IMG/manifest.json")

# --- seed ---------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C vdesk-smoke-host -f "$W/hostkey"
ssh-keygen -q -t ed25519 -N '' -C vdesk-smoke-user -f "$W/userkey"
mkdir "$W/seed"
cat >"$W/seed/meta-data" <<EOF
instance-id: vdesk-smoke-$(basename "$W")
local-hostname: vdesk-smoke
EOF
cat >"$W/seed/network-config" <<EOF
version: 2
ethernets:
  nic0:
    match:
      macaddress: "$MAC"
    dhcp4: true
EOF
[ -z "${SMOKE_SET_NAME:-}" ] || echo "    set-name: $SMOKE_SET_NAME" >>"$W/seed/network-config"
# The report runs as its own unit once cloud-init is completely done (runcmd
# itself runs inside cloud-final, while status is still "running").
REPORT='cloud-init status --wait >/dev/null 2>&1
{
echo VDESK-SMOKE-BEGIN
echo "uptime: $(cut -d" " -f1 /proc/uptime)"
cloud-init status --long
echo "result.json:"; cat /run/cloud-init/result.json
echo "log-warnings: $(grep -c -E "WARNING|ERROR|Traceback" /var/log/cloud-init.log)"
grep -E "WARNING|ERROR|Traceback|failed" /var/log/cloud-init.log | head -n 20
echo "network files:"; ls /etc/systemd/network /etc/network/interfaces.d 2>&1
cat /etc/systemd/network/*.network
ip -4 -o addr show scope global
echo "dns: $(resolvectl dns 2>&1 | tr "\n" " ")"
echo "root-size-bytes: $(df -B1 --output=size / | tail -n 1 | tr -d " ")"
df -h /
echo "active: $(systemctl is-active ssh qemu-guest-agent systemd-networkd cloud-final | tr "\n" " ")"
echo "host-keys: $(ls /etc/ssh/ssh_host_* | tr "\n" " ")"
echo "host-key-fp: $(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
echo "locale: $(grep LANG= /etc/default/locale)"
echo "failed-units:"; systemctl --failed --no-legend --plain
echo "machine-id: $(cat /etc/machine-id)"
echo "resize: $(grep -o "Resizing .* using .*\|Resized root filesystem.*" /var/log/cloud-init.log | tr "\n" " ")"
echo "locale-module: $(grep -o "config-locale.*" /var/log/cloud-init.log | tail -n 1)"
echo "journal-warnings:"; journalctl -b -p warning --no-pager -q | tail -n 30
systemd-analyze time
systemd-analyze blame | head -n 12
echo VDESK-SMOKE-END
} >/dev/ttyS0 2>&1'
{
    echo '#cloud-config'
    echo 'users:'
    echo '  - name: smoke'
    echo '    shell: /bin/bash'
    echo '    sudo: "ALL=(ALL) NOPASSWD:ALL"'
    echo '    lock_passwd: true'
    echo '    ssh_authorized_keys:'
    echo "      - $(cat "$W/userkey.pub")"
    echo 'ssh_keys:'
    echo '  ed25519_private: |'
    sed 's/^/    /' "$W/hostkey"
    echo "  ed25519_public: $(cat "$W/hostkey.pub")"
    echo 'runcmd:'
    printf '  - [systemd-run, --no-block, --unit=vdesk-smoke-report, /bin/sh, -c, %s]\n' \
        "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$REPORT")"
} >"$W/seed/user-data"
genisoimage -quiet -output "$W/seed.iso" -volid cidata -joliet -rock \
    "$W/seed/user-data" "$W/seed/meta-data" "$W/seed/network-config"

# --- boot -----------------------------------------------------------------------
qemu-img create -q -f qcow2 -F qcow2 -b "$IMG/disk.qcow2" "$W/disk.qcow2" "${DISK_GIB}G"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
: >"$W/serial.log"
say "booting $IMG (TCG, ${SMOKE_SMP:-2} vCPU, ${SMOKE_MEM_MIB:-1024} MiB, ${DISK_GIB} GiB disk, ssh on 127.0.0.1:$PORT)"
qemu-system-x86_64 -accel tcg -machine pc -nodefaults -no-user-config -display none \
    -smp "${SMOKE_SMP:-2}" -m "${SMOKE_MEM_MIB:-1024}" \
    -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" -append "$CMDLINE" \
    -drive "file=$W/disk.qcow2,if=virtio,format=qcow2" \
    -drive "file=$W/seed.iso,if=virtio,format=raw,readonly=on" \
    -nic "user,restrict=on,model=virtio-net-pci,mac=$MAC,hostfwd=tcp:127.0.0.1:$PORT-:22" \
    -device virtio-serial-pci \
    -chardev "socket,id=qga0,path=$W/qga.sock,server=on,wait=off" \
    -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
    -serial "file:$W/serial.log" >"$W/qemu.log" 2>&1 &
QPID=$!

# Wait for a line on the serial console (polling, bounded by TIMEOUT).
wait_serial() {
    local pattern=$1
    while ! grep -q -a -- "$pattern" "$W/serial.log"; do
        kill -0 "$QPID" 2>/dev/null || { say "qemu exited"; cat "$W/qemu.log" >&2; return 1; }
        [ "$(elapsed | cut -d. -f1)" -lt "$TIMEOUT" ] || { say "timeout waiting for '$pattern'"; return 1; }
        sleep 0.5
    done
}
wait_serial 'Linux version' && say "kernel started"
wait_serial 'login:' && t_login=$(elapsed) && say "login prompt on ttyS0"
wait_serial 'Cloud-init v. .* finished at' && t_ci=$(elapsed) && say "cloud-init final stage finished"
wait_serial 'VDESK-SMOKE-END' && say "report received"
sed -n '/VDESK-SMOKE-BEGIN/,/VDESK-SMOKE-END/p' "$W/serial.log" | tr -d '\r' >"$W/report.txt"
cat "$W/report.txt" >&2

# --- checks ---------------------------------------------------------------------
fail=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then say "ok   $what"; else say "FAIL $what"; fail=1; fi
}
rep() { grep -q -E -- "$1" "$W/report.txt"; }
check "cloud-init status: done" rep '^status: done'
check "no cloud-init errors (result.json)" rep '"errors": \[\]'
check "no WARNING/ERROR/Traceback in cloud-init.log" rep '^log-warnings: 0$'
check "networkd renderer wrote the MAC-matched config" rep "^MACAddress=$MAC"
check "NIC ${SMOKE_SET_NAME:-}got 10.0.2.15 by DHCP" rep " ${SMOKE_SET_NAME:-[a-z0-9]+} +inet 10\\.0\\.2\\.15/24 .*dynamic"
check "ssh, qemu-guest-agent, networkd, cloud-final active" \
    rep '^active: active active active active $'
check "only the given ed25519 host key is present" \
    rep '^host-keys: /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub $'
check "default locale en_US.UTF-8" rep '^locale: LANG=en_US.UTF-8'
check "no failed systemd units" \
    awk '/^failed-units:/ { f = 1; next } f && /^(Startup|machine-id|VDESK)/ { exit } f && NF { exit 1 }' "$W/report.txt"
size=$(sed -n 's/^root-size-bytes: //p' "$W/report.txt")
check "root filesystem grown to ~${DISK_GIB} GiB (got ${size:-?} bytes)" \
    test "${size:-0}" -gt $((DISK_GIB * 1024 * 1024 * 1024 * 95 / 100))

# SSH with strict host key checking against the key we put in user-data.
echo "[127.0.0.1]:$PORT $(cat "$W/hostkey.pub")" >"$W/known_hosts"
ssh_guest() {
    ssh -n -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$W/known_hosts" -o HostKeyAlgorithms=ssh-ed25519 \
        -o ConnectTimeout=20 -i "$W/userkey" -p "$PORT" smoke@127.0.0.1 "$@"
}
check "ssh login with the user-data host key, passwordless sudo" \
    ssh_guest 'sudo -n true && test "$(cloud-init status)" = "status: done"'

# qemu-guest-agent over its virtio-serial channel.
check "qemu-guest-agent answers guest-ping" python3 - "$W/qga.sock" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(b'{"execute": "guest-sync", "arguments": {"id": 4242}}\n'); f.flush()
while json.loads(f.readline()).get("return") != 4242:
    pass
f.write(b'{"execute": "guest-ping"}\n'); f.flush()
assert json.loads(f.readline()) == {"return": {}}
EOF

uptime_done=$(sed -n 's/^uptime: //p' "$W/report.txt")
say "timings: qemu start -> login prompt ${t_login}s, -> cloud-init finished ${t_ci}s" \
    "(guest uptime at status done: ${uptime_done}s); qcow2 $(stat -c %s "$IMG/disk.qcow2") bytes"
if [ "$fail" = 0 ]; then
    ok=1
    say "PASS"
else
    exit 1
fi
