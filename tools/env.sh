# Sourced by tools/vdesk and the Makefile's test target: the environment in which
# the Pulumi engine, the program and the dynamic providers run.
_vdesk_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$_vdesk_here/paths.sh"
export PATH="$("$_vdesk_here/build-pulumi.sh" --print-path):$VDESK_VENV/bin:$PATH"
export PULUMI_PYTHON_CMD="$_vdesk_here/python"    # the virtualenv's, for the program and dynamic providers
export PYTHONPATH="$(cd "$_vdesk_here/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_HOME="${PULUMI_HOME:-$VDESK_STATE/pulumi/home}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$VDESK_STATE/pulumi/backend}"
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Owner-only when made here: VDESK_STATE may be a shared path, and it holds state, keys and viewer files.
(umask 077; mkdir -p "$VDESK_STATE/pulumi/backend" "$PULUMI_HOME")
# Secrets in state are encrypted with a per-user passphrase, made once.
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    if [ ! -s "$VDESK_STATE/pulumi/passphrase" ]; then
        (umask 077; head -c 24 /dev/urandom | base64 > "$VDESK_STATE/pulumi/passphrase")
    fi
    export PULUMI_CONFIG_PASSPHRASE_FILE="$VDESK_STATE/pulumi/passphrase"
fi
export VDESK_DYNAMIC_SERVER=components.resources.dynamic_server  # more than 4 provider operations at once
# The engine checkpoints its whole state after every step: 77 % of its CPU at 60 desktops
# (bench/results/profile.md). Skip that and write the state once at the end. A run killed
# half way then leaves the state of before it: the creation journal takes back what it made,
# deletes tolerate what is already gone, and components/cli/recover refreshes after a killed
# run's lock. 3.68 reads PULUMI_SKIP_CHECKPOINTS only in experimental mode, which otherwise
# only constrains an interactive `up` to its preview's plan (vdesk runs `up --skip-preview`).
export PULUMI_SKIP_CHECKPOINTS="${PULUMI_SKIP_CHECKPOINTS:-true}"
export PULUMI_EXPERIMENTAL="${PULUMI_EXPERIMENTAL:-true}"
