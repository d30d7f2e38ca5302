#!/bin/sh
# Runs INSIDE the image chroot (as root), after packages.txt is installed.
# Called by tools/build-image.sh; not meant to be run on a host.
set -eu

# --- locale -----------------------------------------------------------------
# cloud-init's locale module sets LANG=en_US.UTF-8 unless the system already
# has a locale; make sure it is generated and already the default, so the
# module has nothing to regenerate and cannot fail.
echo 'en_US.UTF-8 UTF-8' >/etc/locale.gen
locale-gen
update-locale --reset LANG=en_US.UTF-8
locale -a | grep -qx 'en_US.utf8'
grep -qx 'LANG=en_US.UTF-8' /etc/default/locale

# --- services -----------------------------------------------------------------
# networkd applies the network-config v2 that cloud-init renders to
# /etc/systemd/network; resolved takes the DNS servers from DHCP.
systemctl enable systemd-networkd.service systemd-resolved.service
systemctl enable ssh.service
# The serial console, so a boot can be watched (console=ttyS0 on the cmdline
# spawns it too; enabling it makes it independent of the cmdline).
systemctl enable serial-getty@ttyS0.service

# Timers and jobs that cost minutes on a slow (TCG) CPU and nothing for a
# freshly booted desktop. Masked (not disabled) so first-boot presets cannot
# bring them back.
systemctl mask \
    apt-daily.timer apt-daily.service \
    apt-daily-upgrade.timer apt-daily-upgrade.service \
    man-db.timer man-db.service \
    e2scrub_all.timer e2scrub_all.service e2scrub_reap.service

# --- size -------------------------------------------------------------------
# Drop what debootstrap installed before the dpkg path filter
# (/etc/dpkg/dpkg.cfg.d/01-vdesk-nodoc) was in place: docs but copyrights,
# manual and info pages.
find /usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian/*

# --- misc -------------------------------------------------------------------
# Root has no password (cloud-init's users take over); keep it locked.
passwd -l root >/dev/null
