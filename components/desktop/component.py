"""Desktop: one virtual desktop = credentials + disk + seed + domain + readiness gate.

A component, so `pulumi preview` shows a desktop as one thing with its parts
beneath it, and each part is updated on its own: a memory change touches the
domain only, a new user touches the seed only.
"""
from __future__ import annotations

import pulumi

from ..cloudinit import render_seed
from ..portal.accounts import portal_dir_of
from ..resources.portal_account import PortalAccount
from ..resources.credentials import DesktopCredentials
from ..resources.display import spice_socket
from ..resources.domain import Domain
from ..resources.mdev import MediatedDevice
from ..xmlmodel import format_cpuset, parse_cpuset
from ..resources.readiness import GuestReady
from ..resources.seed import CloudInitSeed
from ..resources.volume import Volume, VolumeArgs
from .args import HOME_SERIAL, DesktopArgs
from .settings import domain_inputs
from .seeding import graphical_session, key_file, mdev_uuid, password_hash, seed_variables, state_dir, vm_mac


HOME_DEVICE = f"/dev/disk/by-id/virtio-{HOME_SERIAL}"


class Desktop(pulumi.ComponentResource):
    """A desktop; its typed outputs are set before the engine is told the component is complete."""

    vm_name: str                              # its libvirt domain name
    ip: pulumi.Output[str]                    # once the readiness gate has passed (None when not running)
    state: pulumi.Output[str]                 # running | asleep | idle-off | stopped
    ssh_command: pulumi.Output[str]           # how to log in (after `make access` wrote the key files)
    display_uri: pulumi.Output[str]           # VNC: vnc+unix:///path or vnc://address:port
    spice_uri: pulumi.Output[str]             # SPICE, where the host has it (None otherwise)
    display_password: pulumi.Output[str]      # a secret: the displays' password
    screenshot: pulumi.Output[str]            # a PNG of its screen, taken when it passed its checks
    host_key: pulumi.Output[str]              # the pinned SSH host key (public)
    outputs: dict                             # everything above, as the stack loader exports it

    def __init__(self, name: str, args: DesktopArgs, opts: pulumi.ResourceOptions | None = None):
        args.check(name)
        super().__init__("vdesk:index:Desktop", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()
        host = args.pool.host
        self.vm_name = vm_name = args.vm_name or f"{stack}-{name}"
        mac = vm_mac(host.uri, vm_name)
        extra_macs = tuple(vm_mac(host.uri, vm_name, i + 1) for i, _ in enumerate(args.extra_networks))
        user = args.users[0].name
        with_password = [u for u in args.users if u.password is not None]
        static = args.static_address
        image = args.image.volumes_in(args.pool, adopt=args.adopt)
        graphical = graphical_session(args.image.session, args.users, args.settings)
        display = args.display_size

        # its login key, its pinned host key and its displays' password: one resource (one engine step)
        credentials = DesktopCredentials(name, vm_name=vm_name, rotation=args.display_password_rotation,
                                         valid_for_s=args.display_password_valid_for_s, opts=child)
        host_private = credentials.host_private_key
        socket_dir = host.graphics_socket_dir
        vnc_socket = f"{socket_dir}/{vm_name}.vnc" if socket_dir else None

        # linked: a qcow2 clone on the image (the image must stay); full: an independent copy of it.
        clone = {"copy_of": image.disk_path} if args.disk_clone == "full" else {"backing_path": image.disk_path}
        disk = Volume(f"{name}-disk", VolumeArgs(pool=args.pool, libvirt_name=f"{vm_name}.qcow2",
                                                 capacity=args.disk_bytes, adopt=args.adopt,
                                                 backup_days=args.disk_backup_days, domain=vm_name, **clone),
                      opts=child)

        # The home: its own volume, never replaced with the system disk; kept when the desktop is removed unless
        # home_on_removal: delete (a kept one is found again, through the journal, if the user comes back).
        home = None
        if args.home_bytes:
            home = Volume(f"{name}-home", VolumeArgs(pool=args.pool, libvirt_name=f"{vm_name}-home.qcow2",
                                                     capacity=args.home_bytes, adopt=args.adopt),
                          opts=pulumi.ResourceOptions(parent=self,
                                                      retain_on_delete=args.home_on_removal == "keep" or None))

        # The users' password hashes, made once: for the seed, and for the host's portal (its sign-in).
        hashes = pulumi.Output.all(host_private, *(pulumi.Output.secret(u.password) for u in with_password)
                                   ).apply(lambda v: {u.name: password_hash(pw, host_private=v[0], user=u.name)
                                                      for u, pw in zip(with_password, v[1:])})

        def render(values):
            login_key, host_private, host_public, hashes = values
            return render_seed(args.template, seed_variables(
                args.users, static=static, hostname=name, mac=mac, extra_macs=extra_macs, login_key=login_key,
                host_private=host_private, host_public=host_public, password_hashes=hashes,
                home_device=HOME_DEVICE if home else None,
                shares=[{"tag": sh.name, "mountpoint": sh.mountpoint, "readonly": not sh.writable}
                        for sh in args.shares],
                graphical=graphical))

        docs = pulumi.Output.all(credentials.login_public_key, host_private, credentials.host_public_key, hashes
                                 ).apply(render)
        if host.console_dir:     # a host with a portal: the desktop's people sign in there with these passwords
            PortalAccount(f"{name}-portal", portal_dir=str(portal_dir_of(host.console_dir)), desktop=vm_name,
                          users=[u.name for u in args.users], hashes=pulumi.Output.secret(hashes),
                          emails={u.name: u.email for u in args.users if u.email},
                          groups={u.name: list(u.groups) for u in args.users if u.groups}, opts=child)
        seed = CloudInitSeed(f"{name}-seed", host_uri=host.uri, pool=args.pool.name,
                             volume_name=f"{vm_name}-seed.iso",
                             user_data=pulumi.Output.secret(docs.apply(lambda d: d.user_data)),
                             meta_data=docs.apply(lambda d: d.meta_data),
                             network_config=docs.apply(lambda d: d.network_config), adopt=args.adopt, opts=child)

        # A mediated device (vGPU) is made on the host for the desktop, and named in its domain by UUID.
        hostdevs = []
        for i, gpu in enumerate(args.hostdev_gpus):
            if gpu.pci:
                hostdevs.append({"type": "pci", "address": gpu.address})
            else:
                mdev = MediatedDevice(f"{name}-gpu{i}", host_uri=host.uri, uuid=mdev_uuid(vm_name, i), type=gpu.mdev,
                                      parent=gpu.parent, opts=child)
                hostdevs.append({"type": "mdev", "uuid": mdev.uuid})

        # On an embedded host the guest's serial console is kept in a file of vdesk's, beside qemu's log.
        console_log = f"{host.qemu_log_dir}/{vm_name}-console.log" if host.qemu_log_dir else None
        domain = Domain(f"{name}-vm", {
            "host_uri": host.uri, "name": vm_name, "owner": stack, "project": pulumi.get_project(),
            "domain_type": host.domain_type,
            "boot": image.boot,
            **domain_inputs(args.settings),     # memory, vCPUs, machine, firmware, running, ... as declared
            "cpu_mode": args.cpu_mode, "cpu_model": args.cpu_model,
            "cpu_pinning": [format_cpuset(parse_cpuset(p)) for p in args.cpu_pinning] or None, "hostdevs": hostdevs or None,
            "kernel": image.kernel_path, "initrd": image.initrd_path,
            # (a recipe image's command line is known once it is built: an output)
            "cmdline": pulumi.Output.from_input(image.cmdline).apply(
                lambda cmdline: " ".join(filter(None, (cmdline, args.kernel_args))) or None),
            # Known keys with outputs inside (not outputs of whole entries), so a preview of a new
            # desktop shows each entry with only its path or network still to be known.
            "disks": [
                # `source`: what the disk was made from; a new one (at the same path) restarts the guest on it
                {"path": disk.path, "format": "qcow2", "source": f"{image.source_id}/{args.disk_clone}"},
                {"path": seed.path, "format": "raw", "readonly": True},
                *([{"path": home.path, "format": "qcow2", "serial": HOME_SERIAL}] if home else []),
            ],
            "nics": [{"network": args.network.name, "mac": mac},
                     *({"network": net.name, "mac": m} for net, m in zip(args.extra_networks, extra_macs))],
            "shares": [{"source": sh.source, "tag": sh.name, "readonly": not sh.writable} for sh in args.shares],
            # A desktop image's display: virtio-gpu at the desktop's resolution, an absolute pointer,
            # and the vdagent channel its spice-vdagent serves. Console images keep libvirt's adapter.
            "video": {"model": "virtio", "width": display[0], "height": display[1]} if display else None,
            "tablet": True if graphical else None,
            "vdagent": True if graphical else None,
            "graphics_socket": vnc_socket,
            "graphics_listen": None if vnc_socket else host.graphics_listen,
            "spice": host.spice,
            "display_password": credentials.display_password,
            "display_password_valid_to": credentials.display_password_valid_to,
            "log_file": f"{host.qemu_log_dir}/{vm_name}.log" if host.qemu_log_dir else None,
            "tpm_log_file": f"{host.tpm_log_dir}/{vm_name}-swtpm.log" if args.tpm and host.tpm_log_dir else None,
            "console_log_file": console_log,
            "shutdown_timeout_s": args.timeouts.shutdown,
            "adopt": args.adopt,
        }, opts=child)

        ready = None
        if args.running:
            ready = GuestReady(f"{name}-ready", {
                "host_uri": host.uri, "domain_name": vm_name, "domain_uuid": domain.uuid, "mac": mac,
                "netns": host.netns, "jump": host.ssh_jump, "user": user,
                "private_key": credentials.login_private_key, "host_public_key": credentials.host_public_key,
                "seed_sha256": seed.sha256, "domain_boot": domain.boot_id,
                # A static address is known: the gate goes straight to SSH.
                "address_sources": ([f"static:{static[0].split('/')[0]}"] if static
                                    else list(args.network.address_sources)),
                "address_timeout_s": args.timeouts.address, "ssh_timeout_s": args.timeouts.ssh,
                "cloud_init_timeout_s": args.timeouts.cloud_init,
                "checks": [dict(c) for c in args.checks],
                "console_log_file": console_log,
                "screenshot_path": str(state_dir() / "screenshots" / stack / f"{name}.png"),
                # A desktop image: the screenshot is taken once the screen shows the desktop.
                **({"graphical": True, "graphical_timeout_s": args.timeouts.graphical, "min_width": display[0],
                    "min_height": display[1]} if graphical else {}),
            }, opts=child)

        self.done = ready or domain        # its last part: what must be finished for it to be up
        self.ip = ready.ip if ready else pulumi.Output.from_input(None)
        self.state = domain.state
        self.host_key = credentials.host_public_key
        self.screenshot = ready.screenshot if ready else pulumi.Output.from_input(None)
        known_hosts = state_dir() / "ssh" / stack / f"{name}.known_hosts"
        keyfile = key_file(stack, name)
        via = f"nsenter --net={host.netns} " if host.netns else ""
        jump = f"-J {host.ssh_jump} " if host.ssh_jump else ""     # the host's key: the runner's known_hosts
        self.ssh_command = self.ip.apply(lambda ip: (
            f"{via}ssh {jump}-i {keyfile} -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
            f"{user}@{ip}") if ip else None)
        self.display_uri, self.spice_uri = _display_uris(host, vnc_socket, domain)
        self.display_password = credentials.display_password
        self.outputs = {
            "name": vm_name,
            "ip": self.ip,
            "ssh_command": self.ssh_command,
            "display_uri": self.display_uri,
            "spice_uri": self.spice_uri,
            "display_password": self.display_password,
            "display_password_valid_to": credentials.display_password_valid_to.apply(lambda v: v or None),
            # the browser console: `make console` signs a link for this desktop with its host's gateway key
            # (and how long this stack's links last: its own, never the gateway's)
            "console": {"dir": host.console_dir, "desktop": vm_name, "stack": stack,
                        "link_validity_s": host.console and host.console.link_validity_s} if host.console_dir else None,
            "state": self.state,
            "host": host.name,
            "user": user,
            "checks": [dict(c) for c in args.checks],
            "screenshot": ready.screenshot if ready else None,
            "host_key": self.host_key,
            "login_private_key": credentials.login_private_key,
            "host_uri": host.uri,
            "disk": disk.path,           # its system disk (`make restore` puts a kept copy back here)
            "home": home.path if home else None,
        }
        self.register_outputs(self.outputs)


def _display_uris(host, vnc_socket: str | None, domain: Domain) -> tuple[pulumi.Output, pulumi.Output]:
    """Where a viewer on the host reaches the displays (an address in the embedded host's netns needs nsenter)."""
    if vnc_socket:
        spice = f"spice+unix://{spice_socket(vnc_socket)}" if host.spice else None
        return pulumi.Output.from_input(f"vnc+unix://{vnc_socket}"), pulumi.Output.from_input(spice)
    address = host.graphics_listen
    address = "127.0.0.1" if address in ("0.0.0.0", "::") else f"[{address}]" if ":" in address else address
    vnc = domain.display_port.apply(lambda p: f"vnc://{address}:{p}" if p else None)
    spice = domain.spice_port.apply(lambda p: f"spice://{address}:{p}" if p else None)
    return vnc, spice
