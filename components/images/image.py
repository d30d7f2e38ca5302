"""Image: a guest image as a stack resource, imported once into each pool whose desktops use it.

The image's files live on the machine vdesk runs on (the golden image vdesk
builds, or a disk image of the user's own); each pool that needs it gets a
copy as volumes, named after the image's content hash, so an adopted desktop
finds them again and a new image content is a new volume.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pulumi

from ..resources.volume import Volume, VolumeArgs
from . import golden

if TYPE_CHECKING:
    from ..resources.pool import StoragePool


@dataclasses.dataclass(frozen=True)
class ImageVolumes:
    """An image's volumes in one pool: what a desktop boots from."""

    disk_path: pulumi.Input[str]
    boot: str                               # kernel | bios | uefi
    kernel_path: pulumi.Input[str] | None = None
    initrd_path: pulumi.Input[str] | None = None
    cmdline: str | None = None
    source_id: str = ""                     # changes with the image's content


@dataclasses.dataclass
class ImageArgs:
    """Which image: `golden` (one vdesk builds, e.g. debian12) or `path` (your own disk, booted by `boot`)."""

    golden: str | None = None
    path: str | None = None
    boot: str | None = None                 # path images: bios | uefi
    volume_prefix: str | None = None        # its volumes are <prefix>-<hash>-disk.qcow2 ... (default <stack>-<name>)
    files: golden.ImageFiles | None = None  # already resolved (the stack loader resolves them first)


class Image(pulumi.ComponentResource):
    """A guest image; `volumes_in(pool)` imports it into a pool (once) and says how desktops boot it."""

    source_id: pulumi.Output[str]

    def __init__(self, name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vdesk:index:Image", name, None, opts)
        self._name = name
        self.files = args.files or golden.resolve(golden.ImageSource(name, args.golden, args.path,
                                                                     args.boot or ("kernel" if args.golden else "bios")))
        self._prefix = args.volume_prefix or f"{pulumi.get_stack()}-{name}"
        self._imports: dict[str, ImageVolumes] = {}
        self.source_id = pulumi.Output.from_input(self.files.source_id)
        self.register_outputs({"source_id": self.source_id, "boot": self.files.boot})

    def volumes_in(self, pool: "StoragePool", *, name: str | None = None, adopt: bool = False) -> ImageVolumes:
        """The image's volumes in `pool`, declared on first use (`name`: their resource name prefix)."""
        key = pool.resource_name
        if key not in self._imports:
            self._imports[key] = self._import(pool, name or f"{self._name}-{key}", adopt)
        return self._imports[key]

    def _import(self, pool: "StoragePool", name: str, adopt: bool) -> ImageVolumes:
        f = self.files
        # Declared at the stack's root before images were components: keep those resources.
        child = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])

        def imported(kind: str, path: str, fmt: str) -> Volume:
            return Volume(f"{name}-{kind}", VolumeArgs(
                pool=pool, libvirt_name=f"{self._prefix}-{f.source_id[:12]}-{kind}.{fmt}", format=fmt,
                source_path=path, source_id=f.source_id, adopt=adopt), opts=child)

        disk = imported("disk", f.disk, "qcow2")
        kernel = imported("kernel", f.kernel, "raw") if f.kernel else None
        initrd = imported("initrd", f.initrd, "raw") if f.initrd else None
        return ImageVolumes(disk.path, f.boot, kernel and kernel.path, initrd and initrd.path, f.cmdline,
                            f.source_id)
