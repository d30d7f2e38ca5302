"""Desktop: one virtual desktop = keys + disk + seed + domain + readiness gate.

A component, so `pulumi preview` shows a desktop as one thing with its parts
beneath it, and each part is updated on its own: a memory change touches the
domain only, a new user touches the seed only.
"""
from __future__ import annotations

import pulumi

from ..cloudinit import render_seed
from ..resources.domain import Domain
from ..resources.keys import SshKeyPair
from ..resources.mdev import MediatedDevice
from ..xmlmodel import format_cpuset, parse_cpuset
from ..resources.readiness import GuestReady
from ..resources.seed import CloudInitSeed
from ..resources.volume import Volume, VolumeArgs
from .args import DesktopArgs
from .seeding import key_file, mdev_uuid, password_hash, seed_variables, state_dir, vm_mac


class Desktop(pulumi.ComponentResource):
    """A desktop; its typed outputs are set before the engine is told the component is complete."""

    vm_name: str                              # its libvirt domain name
    ip: pulumi.Output[str]                    # once the readiness gate has passed (None when not running)
    state: pulumi.Output[str]                 # running | stopped
    ssh_command: pulumi.Output[str]           # how to log in (after `make access` wrote the key files)
    display_uri: pulumi.Output[str]
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

        login = SshKeyPair(f"{name}-login-key", comment=f"vdesk login {vm_name}", opts=child)
        host_key = SshKeyPair(f"{name}-host-key", comment=f"vdesk host {vm_name}", opts=child)

        # linked: a qcow2 clone on the image (the image must stay); full: an independent copy of it.
        clone = {"copy_of": image.disk_path} if args.disk_clone == "full" else {"backing_path": image.disk_path}
        disk = Volume(f"{name}-disk", VolumeArgs(pool=args.pool, libvirt_name=f"{vm_name}.qcow2",
                                                 capacity=args.disk_bytes, adopt=args.adopt, **clone), opts=child)

        def render(values):
            login_key, host_private, host_public, *secrets = values
            hashes = {u.name: password_hash(pw, host_private=host_private, user=u.name)
                      for u, pw in zip(with_password, secrets)}
            return render_seed(args.template, seed_variables(
                args.users, static=static, hostname=name, mac=mac, extra_macs=extra_macs, login_key=login_key,
                host_private=host_private, host_public=host_public, password_hashes=hashes))

        docs = pulumi.Output.all(login.public_key, host_key.private_key, host_key.public_key,
                                 *(pulumi.Output.secret(u.password) for u in with_password)).apply(render)
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

        domain = Domain(f"{name}-vm", {
            "host_uri": host.uri, "name": vm_name, "owner": stack, "domain_type": host.domain_type,
            "boot": image.boot, "memory_mib": args.memory_mib, "vcpus": args.vcpus, "max_vcpus": args.max_vcpus,
            "cpu_topology": dict(args.cpu_topology) if args.cpu_topology else None,
            "cpu_mode": args.cpu_mode or ("custom" if args.cpu_model else None), "cpu_model": args.cpu_model,
            "cpu_pinning": [format_cpuset(parse_cpuset(p)) for p in args.cpu_pinning] or None, "hostdevs": hostdevs or None,
            "machine": args.machine,
            "kernel": image.kernel_path, "initrd": image.initrd_path,
            "cmdline": " ".join(filter(None, (image.cmdline, args.kernel_args))) or None,
            # Known keys with outputs inside (not outputs of whole entries), so a preview of a new
            # desktop shows each entry with only its path or network still to be known.
            "disks": [
                {"path": disk.path, "format": "qcow2"},
                {"path": seed.path, "format": "raw", "readonly": True},
            ],
            "nics": [{"network": args.network.name, "mac": mac},
                     *({"network": net.name, "mac": m} for net, m in zip(args.extra_networks, extra_macs))],
            "graphics_socket": f"{host.display_dir}/{vm_name}.vnc" if host.display_dir else None,
            "log_file": f"{host.qemu_log_dir}/{vm_name}.log" if host.qemu_log_dir else None,
            "running": args.running,
            "autostart": args.autostart,
            "shutdown_timeout_s": args.timeouts.shutdown,
            "adopt": args.adopt,
        }, opts=child)

        ready = None
        if args.running:
            ready = GuestReady(f"{name}-ready", {
                "host_uri": host.uri, "domain_name": vm_name, "domain_uuid": domain.uuid, "mac": mac,
                "netns": host.netns, "jump": host.ssh_jump, "user": user, "private_key": login.private_key,
                "host_public_key": host_key.public_key, "seed_sha256": seed.sha256,
                # A static address is known: the gate goes straight to SSH.
                "address_sources": ([f"static:{static[0].split('/')[0]}"] if static
                                    else list(args.network.address_sources)),
                "address_timeout_s": args.timeouts.address, "ssh_timeout_s": args.timeouts.ssh,
                "cloud_init_timeout_s": args.timeouts.cloud_init,
                "checks": [dict(c) for c in args.checks],
                "screenshot_path": str(state_dir() / "screenshots" / stack / f"{name}.png"),
            }, opts=child)

        self.done = ready or domain        # its last part: what must be finished for it to be up
        self.ip = ready.ip if ready else pulumi.Output.from_input(None)
        self.state = domain.state
        self.host_key = host_key.public_key
        self.screenshot = ready.screenshot if ready else pulumi.Output.from_input(None)
        known_hosts = state_dir() / "ssh" / stack / f"{name}.known_hosts"
        keyfile = key_file(stack, name)
        via = f"nsenter --net={host.netns} " if host.netns else ""
        jump = f"-J {host.ssh_jump} " if host.ssh_jump else ""     # the host's key: the runner's known_hosts
        self.ssh_command = self.ip.apply(lambda ip: (
            f"{via}ssh {jump}-i {keyfile} -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
            f"{user}@{ip}") if ip else None)
        self.display_uri = (pulumi.Output.from_input(f"vnc+unix://{host.display_dir}/{vm_name}.vnc")
                            if host.display_dir
                            else domain.display_port.apply(lambda p: f"vnc://127.0.0.1:{p}" if p else None))
        self.outputs = {
            "name": vm_name,
            "ip": self.ip,
            "ssh_command": self.ssh_command,
            "display_uri": self.display_uri,
            "state": self.state,
            "host": host.name,
            "user": user,
            "checks": [dict(c) for c in args.checks],
            "screenshot": ready.screenshot if ready else None,
            "host_key": self.host_key,
            "login_private_key": login.private_key,
        }
        self.register_outputs(self.outputs)
