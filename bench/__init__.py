"""`make bench`: what vdesk's providers cost on top of raw libvirt, measured against a floor in the same run.

Everything runs on a throw-away embedded libvirtd (temp state root, own netns),
stopped and purged at the end, even on failure.

Each desktop is a linked-clone qcow2 (backing store: a small empty base volume
in a dir pool) plus a one-vCPU, 32 MiB TCG domain that is *started*: the hand-
measured floor includes `start`, and starting is what a desktop costs (a qemu
process, its chardevs, VNC socket).  The disk holds no OS, so SeaBIOS finds
nothing to boot and idles; no image download, no boot time in the numbers.

Baseline ("raw"): one libvirt connection, the fewest calls (createXML with a
backingStore, defineXML, create; destroy, undefine, delete) and a hand-written
domain XML that is checked to be the same guest as vdesk's.  vdesk: check() +
VolumeProvider.create(backing_path) + DomainProvider.create, then
DomainProvider.delete + VolumeProvider.delete, exactly as Pulumi drives them.

Modules: testbed (host + pool), reaper (prompt zombie reaping, see there),
drivers (raw vs vdesk), provisioning (timed phases, failures, peak RSS),
xmlcost (XML model vs lxml), __main__ (CLI, table).
"""
