#!/usr/bin/env bash
# Installs kcli, the peer `make bench` measures vdesk against, from PyPI into a virtualenv of its
# own (its dependencies must not touch the project's venv), cached per user outside the clone and
# keyed by this file's hash (the pins below), like the project's venv. Idempotent.
# Prints the venv's `kcli` as the last line of stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/paths.sh"

KCLI_VERSION=99.0.202610251748
LIBVIRT_PYTHON=12.8.0      # the project's pin (pyproject.toml): pip reuses the wheel it built for it

venv="$VDESK_CACHE/kcli/venv-$(sha256sum "$0" | cut -c1-12)"
if [ ! -f "$venv/.complete" ]; then
    command -v genisoimage >/dev/null ||
        { echo "kcli-venv: kcli makes its cloud-init ISOs with genisoimage: run tools/setup.sh" >&2; exit 1; }
    mkdir -p "$VDESK_CACHE/kcli"
    exec 9>"$VDESK_CACHE/kcli/.lock"
    flock 9
    if [ ! -f "$venv/.complete" ]; then        # not made while we waited
        echo "kcli-venv: creating $venv (kcli $KCLI_VERSION)" >&2
        rm -rf "$venv"
        "${VDESK_BASE_PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "kcli==$KCLI_VERSION" "libvirt-python==$LIBVIRT_PYTHON" >&2
        "$venv/bin/kcli" -v >/dev/null 2>&1 || "$venv/bin/python" -c 'import kvirt' >&2
        touch "$venv/.complete"
    fi
fi
echo "$venv/bin/kcli"
