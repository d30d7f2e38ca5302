#!/bin/sh
# Runs INSIDE the image chroot (as root), after the recipe's packages are installed
# and before its desktop environment's own customize.sh.
# Called by tools/build-image.sh; not meant to be run on a host.
set -eu

# --- locale, keyboard, time zone (from the recipe) ---------------------------
# Passed in by tools/build-image.sh: VDESK_LOCALE (e.g. de_DE.UTF-8),
# VDESK_XKB_LAYOUT / VDESK_XKB_VARIANT, VDESK_TIMEZONE (e.g. Europe/Berlin).
#
# cloud-init's locale module sets LANG=en_US.UTF-8 unless the system already
# has a locale; make sure the recipe's is generated and already the default,
# so the module has nothing to regenerate and cannot fail. en_US.UTF-8 is
# always generated too.
: "${VDESK_LOCALE:?}" "${VDESK_XKB_LAYOUT:?}" "${VDESK_TIMEZONE:?}"
charset=$(awk -v l="$VDESK_LOCALE" '$1 == l { print $2; exit }' /usr/share/i18n/SUPPORTED)
[ -n "$charset" ] || { echo "locale $VDESK_LOCALE is not in /usr/share/i18n/SUPPORTED" >&2; exit 1; }
{
    echo 'en_US.UTF-8 UTF-8'
    [ "$VDESK_LOCALE" = en_US.UTF-8 ] || echo "$VDESK_LOCALE $charset"
} >/etc/locale.gen
locale-gen
update-locale --reset LANG="$VDESK_LOCALE"
grep -qx "LANG=$VDESK_LOCALE" /etc/default/locale

# The keyboard: console-setup and X (its udev rules) read /etc/default/keyboard.
cat >/etc/default/keyboard <<KBD
# vdesk image recipe: keyboard $VDESK_XKB_LAYOUT${VDESK_XKB_VARIANT:+($VDESK_XKB_VARIANT)}
XKBMODEL="pc105"
XKBLAYOUT="$VDESK_XKB_LAYOUT"
XKBVARIANT="${VDESK_XKB_VARIANT:-}"
XKBOPTIONS=""
BACKSPACE="guess"
KBD

test -f "/usr/share/zoneinfo/$VDESK_TIMEZONE" || { echo "no time zone $VDESK_TIMEZONE" >&2; exit 1; }
ln -sfn "/usr/share/zoneinfo/$VDESK_TIMEZONE" /etc/localtime
echo "$VDESK_TIMEZONE" >/etc/timezone

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
# Early-boot work that competes with cloud-init for the CPU and serves nothing
# here: python3.11's binfmt entry (running .pyc files as programs), mounted and
# registered at every boot.
systemctl mask systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount

# cloud-init's config stage runs in its init stage (cloud.cfg.d/99_vdesk.cfg):
# its own service would start cloud-init once more to run no module.
systemctl mask cloud-config.service

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
