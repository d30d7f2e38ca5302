# Sourced by vdesk's scripts: where per-user caches and state live.
# Caches (rebuildable): toolchain, images, virtualenvs. State: Pulumi backend, keys, hosts.
_vdesk_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VDESK_CACHE=${VDESK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vdesk}
export VDESK_STATE=${VDESK_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/vdesk}
VDESK_VENV="$VDESK_CACHE/venv/py-$(cat "$_vdesk_repo/pyproject.toml" | sha256sum | cut -c1-12)"
export VDESK_VENV
# The test OpenID provider's node packages (tests/support/oidc_provider), keyed by its lockfile's hash.
VDESK_OIDC_PROVIDER="$VDESK_CACHE/node/oidc-provider-$(sha256sum < "$_vdesk_repo/tests/support/oidc_provider/package-lock.json" | cut -c1-12)"
export VDESK_OIDC_PROVIDER
