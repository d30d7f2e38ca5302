"""`make bench`: what vdesk costs a user and where the time goes, against raw libvirt measured in the same run.

Everything runs on throw-away embedded libvirtds (temp state roots, own netns),
stopped and purged at the end, even on failure.  Nothing here asserts a speed:
the bench prints ratios and writes bench/results/.

Whole stack (wholestack.py, floor.py): `tools/vdesk up|preview|refresh|destroy`
of N desktops declared stopped (pool, network, the golden image imported, per
desktop two SSH keys, a linked clone, a seed ISO and a domain), as a user runs
them, against a raw libvirt-python script doing the same libvirt work on 8
threads.  Peak RSS of the engine, the program and the provider server comes
from /proc (procwatch.py); allocation per desktop from libvirt's volume info.
boot.py: one running desktop, `up` until the readiness gate passes, against
the guest's boot read from its console.  profiling.py: the engine's pprof, a
timestamped trace of the front door, py-spy of the program and the provider
server.  report.py: table, plot, profile.md.

Provider level (provider_level.py, the earlier bench): vdesk's providers
called directly against the fewest raw libvirt calls, 10 started OS-less
desktops (a linked clone on a small empty base, 32 MiB TCG domain), serial and
8-way parallel.  Modules: testbed (host + pool), reaper (prompt zombie reaping,
see there), drivers (raw vs vdesk), provisioning (timed phases, failures, peak
RSS), xmlcost (XML model vs lxml).
"""
