# vdesk: `make up` and `make test` set up whatever is missing first (idempotent, cached).
STACK ?= dev
SHELL := /bin/bash
VDESK := tools/vdesk
PYTEST_ARGS ?=

.PHONY: setup image up preview plan refresh destroy outputs access console check restore test unit reliability bench \
        host-stop

setup:
	@tools/setup.sh

# setup, with the golden guest image built beside the venv and the engine
image:
	@tools/setup.sh --image

up: image
	@$(VDESK) up $(STACK)

preview: image
	@$(VDESK) preview $(STACK)

# What a preview would change, per desktop (what a GitOps change request shows).
plan: image
	@$(VDESK) plan $(STACK)

refresh: setup
	@$(VDESK) refresh $(STACK)

destroy: setup
	@$(VDESK) destroy $(STACK)

outputs: setup
	@$(VDESK) outputs $(STACK)

access: setup
	@$(VDESK) access $(STACK)

# Put a kept copy of a desktop's replaced system disk back (the newest, or BACKUP=<name>; LIST=1 lists them).
restore: setup
	@source tools/env.sh && work=$$(python -m components.cli.workdir $(STACK)) && cd "$$work" && \
	  python -m components.cli.restore $(STACK) $(DESKTOP) $(if $(BACKUP),--backup $(BACKUP)) $(if $(LIST),--list)

# A browser link to one desktop's screen (noVNC through the host's gateway) that expires:
# make console USER=alice [VALID_FOR=15m] [REVOKE=<link id>|all]. USER is the desktop's name, not your login.
CONSOLE_DESKTOP := $(if $(filter command line,$(origin USER)),$(USER),)
console: setup
	@$(VDESK) console $(STACK) $(CONSOLE_DESKTOP) $(if $(VALID_FOR),--valid-for $(VALID_FOR),) $(if $(REVOKE),--revoke $(REVOKE),)

# Re-run every desktop's declared checks over SSH (pinned host keys) and print a table.
check: setup
	@source tools/env.sh && python -m components.cli.checks $(STACK) $(if $(WAKE),--wake)

# All four tiers: unit (mocks + libvirt's test driver), integration (the
# project's own libvirtd), end-to-end (real guests over SSH), reliability
# (killed runs, host faults, hostile input; bounded here). Two xdist workers:
# the tests marked `guests` one after another in one, everything else in the
# other (tests/conftest.py), so that no two guests ever boot at once. The 25
# slowest tests are listed at the end: the tier's time budget is 45 minutes.
test: image
	@source tools/env.sh && python -m pytest -ra -n 2 --dist loadgroup --durations=25 $(PYTEST_ARGS) tests

# The reliability tier alone, with many more hostile examples; prints what leaked (must be nothing).
reliability: image
	@source tools/env.sh && VDESK_RELIABILITY=thorough python -m pytest -ra $(PYTEST_ARGS) tests/reliability

# What a user waits for vs raw libvirt and vs kcli (installed by tools/kcli-venv.sh), measured in the same run
# (ratios, not thresholds): whole-stack up/no-op up/preview/refresh/destroy of 1, 10, 30, 60 stopped desktops
# beside `kcli create plan`/`delete plan` of the same VMs, one booted desktop's gate, a profile
# of N=60, and the provider-level comparison. Results in bench/results/. BENCH_ARGS: e.g. "--ns 1,10",
# "--skip boot,providers", "--engines" (see python -m bench --help). Waits for BENCH_LOCK so that no one
# else's guests run during the measurement.
BENCH_ARGS ?=
BENCH_LOCK ?= /tmp/vdesk-guests.lock
bench: image
	@source tools/env.sh && { flock -n $(BENCH_LOCK) true || echo "bench: waiting for $(BENCH_LOCK) (guests of another run)" >&2; } && \
		flock $(BENCH_LOCK) python -m bench $(BENCH_ARGS)

unit: setup
	@source tools/env.sh && python -m pytest -ra $(PYTEST_ARGS) tests/unit

host-stop: setup
	@source tools/env.sh && python -m components.host.embedded stop --name local
