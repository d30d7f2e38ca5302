"""Image: a guest image as a stack resource, imported once into each pool whose desktops use it.

The image's files live on the machine vdesk runs on: an image vdesk builds
from a recipe (or the golden console image), or a disk image of the user's
own. Each pool that needs it gets a copy as volumes, named after the image's
content hash, so an adopted desktop finds them again and a new image content
is a new volume.

A recipe image is a resource of its own (ImageBuild): `up` builds it, or
reuses the cached build of the same recipe; `preview` says which it will be.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

import pulumi

from ..errors import InputError
from ..images import golden
from ..images.recipe import CONSOLE, Recipe
from ..resources.image_build import ImageBuild
from ..resources.volume import Volume, VolumeArgs

if TYPE_CHECKING:
    from ..resources.pool import StoragePool


@dataclasses.dataclass(frozen=True)
class ImageVolumes:
    """An image's volumes in one pool: what a desktop boots from."""

    disk_path: pulumi.Input[str]
    boot: str                               # kernel | bios | uefi
    kernel_path: pulumi.Input[str] | None = None
    initrd_path: pulumi.Input[str] | None = None
    cmdline: pulumi.Input[str] | None = None
    source_id: str = ""                     # changes with the image's content


@dataclasses.dataclass
class ImageArgs:
    """Which image: `recipe` (one vdesk builds from a recipe), `golden` (debian12: the console image, built
    by `make image`) or `path` (your own disk, booted by `boot`)."""

    golden: str | None = None
    path: str | None = None
    boot: str | None = None                 # path images: bios | uefi
    # {base, desktop, packages, locale, keyboard, timezone, firmware}, e.g. {"desktop": "xfce", "packages": ["git"]};
    # missing fields take their defaults (debian12, none, [], en_US.UTF-8, us, Etc/UTC)
    recipe: Recipe | Mapping[str, Any] | None = None
    volume_prefix: str | None = None        # its volumes are <prefix>-<hash>-disk.qcow2 ... (default <stack>-<name>)
    files: golden.ImageFiles | None = None  # already resolved (the stack loader resolves them first)


class Image(pulumi.ComponentResource):
    """A guest image; `volumes_in(pool)` imports it into a pool (once) and says how desktops boot it."""

    source_id: pulumi.Output[str]
    recipe: Recipe | None                   # what it is made of (None: a disk image of the user's own)
    build: ImageBuild | None                # the recipe image's build (None: built by `make image`, or own)

    def __init__(self, name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None):
        if args.recipe is not None and (args.golden or args.path or args.files):
            raise InputError([(f"{name}.recipe", "give a recipe, or golden, or path: one of them")])
        recipe = Recipe.parse(args.recipe, f"{name}.recipe") if args.recipe is not None else None
        super().__init__("vdesk:index:Image", name, None, opts)
        self._name = name
        self.build = None
        if recipe is not None:
            self.recipe = recipe
            self.files = recipe_files(name, recipe)
            manifest = recipe.manifest()
            pulumi.log.info(f"image {name}: recipe {recipe.hash} " + (
                "cached, reused" if manifest else f"not built yet: `up` builds it ({recipe.to_json()})"),
                resource=self)
            self.build = ImageBuild(f"{name}-build", recipe, image=name, opts=pulumi.ResourceOptions(parent=self))
        else:
            self.files = args.files or golden.resolve(golden.ImageSource(
                name, args.golden, args.path, args.boot or ("kernel" if args.golden else "bios")))
            self.recipe = CONSOLE if (args.golden or (args.files and args.files.kernel)) else None
        self._prefix = args.volume_prefix or f"{pulumi.get_stack()}-{name}"
        self._imports: dict[str, ImageVolumes] = {}
        self.source_id = pulumi.Output.from_input(self.files.source_id)
        self.register_outputs({"source_id": self.source_id, "boot": self.files.boot,
                               **({"recipe": recipe.as_dict()} if recipe else {})})

    @property
    def graphical(self) -> bool:
        """Its desktop desktops boot to a graphical session (a recipe with a desktop environment)."""
        return bool(self.recipe and self.recipe.graphical)

    @property
    def session(self) -> str | None:
        """The X session its desktops log into (xfce, ...), or None for a console image."""
        return self.recipe.session if self.recipe else None

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
        built = self.build
        # A recipe image's files exist once its build has run: the imports take their paths from it.
        paths = ({"disk": built.disk, "kernel": built.kernel, "initrd": built.initrd} if built
                 else {"disk": f.disk, "kernel": f.kernel, "initrd": f.initrd})

        def imported(kind: str, fmt: str) -> Volume:
            return Volume(f"{name}-{kind}", VolumeArgs(
                pool=pool, libvirt_name=f"{self._prefix}-{f.source_id[:12]}-{kind}.{fmt}", format=fmt,
                source_path=paths[kind], source_id=f.source_id, adopt=adopt), opts=child)

        disk = imported("disk", "qcow2")
        kernel = imported("kernel", "raw") if f.kernel else None
        initrd = imported("initrd", "raw") if f.initrd else None
        cmdline = (built.cmdline if built else f.cmdline) if f.kernel else None   # uefi: GRUB's, in the image
        return ImageVolumes(disk.path, f.boot, kernel and kernel.path, initrd and initrd.path, cmdline, f.source_id)


def recipe_files(name: str, recipe: Recipe) -> golden.ImageFiles:
    """Where a recipe image's files are (or will be, once built): firmware bios boots by direct kernel boot, so
    its kernel and initrd are files too; firmware uefi boots its own shim and GRUB from the disk."""
    folder = recipe.directory
    manifest = recipe.manifest()
    if recipe.boot == "uefi":
        return golden.ImageFiles(name, str(folder / "disk.qcow2"), "uefi", recipe.hash)
    return golden.ImageFiles(name, str(folder / "disk.qcow2"), "kernel", recipe.hash, str(folder / "vmlinuz"),
                             str(folder / "initrd.img"), manifest["kernel_cmdline"] if manifest else None)
