#!/bin/sh
# Runs INSIDE the image chroot (as root) after the common customize.sh, for
# images with desktop: lxqt. Called by tools/build-image.sh.
set -eu

# Boot to the display manager.
systemctl set-default graphical.target
systemctl enable lightdm.service
test "$(basename "$(readlink -f /etc/systemd/system/display-manager.service)")" = lightdm.service

# LXQt's session exists, and LightDM's configured default points at it.
test -f /usr/share/xsessions/lxqt.desktop

# Work an emulated CPU does not need to do at every boot.
for unit in upower.service; do
    if systemctl cat "$unit" >/dev/null 2>&1; then systemctl mask "$unit"; fi
done
