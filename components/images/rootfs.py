"""Root filesystems for containers, made from the images vdesk already builds.

A golden image's disk.qcow2 is an unpartitioned ext4 filesystem. It is turned
into a directory tree without mounting anything (no loop device, no FUSE):

1. `qemu-img convert` writes the filesystem as a sparse raw file;
2. `debugfs -R "rdump / DIR"` copies every directory, file and symlink out;
3. rdump drops set-uid/set-gid/sticky bits and hard links, so a second
   debugfs pass lists every directory with `ls -p` (inode, exact mode, uid,
   gid) and the tree is corrected from that: modes, owners, hard links, fifos.

That base tree is made once per image and cached under
`$VDESK_CACHE/rootfs/<key>/tree` (key: the image's recipe hash, or its path,
size and mtime, plus the extraction format). Each container gets a copy of
its own (`cp -a --reflink=auto`: copy-on-write where the filesystem can, a
plain copy otherwise), customised, and with every file's owner shifted into
the container's unprivileged uid/gid range when user namespaces are on.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .. import paths
from ..errors import VdeskError

log = logging.getLogger(__name__)

EXTRACT_FORMAT = "vdesk-rootfs/1"   # bump when the extraction changes what a base tree holds
ID_RANGE = 65536                     # uids/gids 0..65535 inside a container
MARKER = "vdesk-container.json"      # in <containers_dir>/<name>/: this directory is vdesk's
_LS_LINE = re.compile(r"^/(\d+)/(\d+)/(\d+)/(\d+)/(.*)/(\d*)/$")
_TIMEOUT_S = 900
_MASKED_IN_CONTAINERS = ("sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-kernel-config.mount",
                         "systemd-remount-fs.service")


class RootfsError(VdeskError):
    """A container root filesystem could not be made, copied or removed."""


# --- the image ----------------------------------------------------------------

def image_disk(image: str | os.PathLike) -> Path:
    """The filesystem image of `image`: a golden image directory (its disk.qcow2) or a file."""
    path = Path(image)
    if path.is_dir():
        path = path / "disk.qcow2"
    if not path.is_file():
        raise RootfsError(f"{image}: no such image (want a golden image directory with disk.qcow2, "
                          "or a qcow2/raw file holding an unpartitioned ext4 filesystem)")
    return path


def image_key(image: str | os.PathLike) -> str:
    """Names the base tree of an image: changes when the image (or the extraction) changes."""
    path = Path(image)
    manifest = path / "manifest.json" if path.is_dir() else path.parent / "manifest.json"
    ident: dict = {}
    if manifest.is_file():
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(manifest.read_text())
            if data.get("recipe_hash"):
                ident = {"name": data.get("name"), "recipe_hash": data["recipe_hash"]}
    disk = image_disk(image)
    if not ident:
        st = disk.stat()
        ident = {"path": str(disk.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest = hashlib.sha256(json.dumps([EXTRACT_FORMAT, ident], sort_keys=True).encode()).hexdigest()[:12]
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "", str(ident.get("name") or disk.stem))[:40] or "image"
    return f"{prefix}-{digest}"


def _run(cmd: list[str], *, what: str, timeout: float = _TIMEOUT_S, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, **kw)
    except FileNotFoundError:
        raise RootfsError(f"{what}: {cmd[0]} is not installed (Debian packages qemu-utils, e2fsprogs)") from None
    except subprocess.TimeoutExpired:
        raise RootfsError(f"{what}: `{' '.join(cmd)}` took longer than {timeout:g} s") from None
    if proc.returncode != 0:
        raise RootfsError(f"{what} failed (exit {proc.returncode}): "
                          f"{(proc.stderr.strip() or proc.stdout.strip())[-2000:]}")
    return proc


def _disk_format(disk: Path) -> str:
    info = json.loads(_run(["qemu-img", "info", "--output=json", str(disk)], what=f"reading {disk}").stdout)
    return info.get("format", "raw")


# --- extraction -----------------------------------------------------------------

@dataclasses.dataclass
class _Entry:
    inode: int
    mode: int
    uid: int
    gid: int


def _debugfs_listing(raw: Path, directories: list[str]) -> dict[str, _Entry]:
    """path -> (inode, exact mode, uid, gid) of every entry in `directories`, from one debugfs run."""
    for d in directories:
        if '"' in d or "\n" in d:
            raise RootfsError(f"cannot extract {d!r}: debugfs cannot address names with quotes or newlines")
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as fh:
        fh.write("".join(f'ls -p "{d}"\n' for d in directories))
        script = fh.name
    try:
        out = _run(["debugfs", "-f", script, str(raw)], what="listing the image with debugfs").stdout
    finally:
        os.unlink(script)
    entries: dict[str, _Entry] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("debugfs: ls -p "):
            current = line[len('debugfs: ls -p "'):-1]
            continue
        match = _LS_LINE.match(line)
        if current is None or not match:
            continue
        inode, mode, uid, gid, name, _size = match.groups()
        if name in (".", ".."):
            if name == "." and current == "/":
                entries["/"] = _Entry(int(inode), int(mode, 8), int(uid), int(gid))
            continue
        path = (current.rstrip("/") + "/" + name)
        entries[path] = _Entry(int(inode), int(mode, 8), int(uid), int(gid))
    return entries


def _files_with_xattrs(raw: Path, files: list[str]) -> list[str]:
    """Files carrying extended attributes (file capabilities, ACLs), which rdump does not copy."""
    files = [f for f in files if '"' not in f and "\n" not in f]
    if not files:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as fh:
        fh.write("".join(f'ea_list "{f}"\n' for f in files))
        script = fh.name
    try:
        out = _run(["debugfs", "-f", script, str(raw)], what="listing extended attributes with debugfs").stdout
    finally:
        os.unlink(script)
    found, current = [], None
    for line in out.splitlines():
        if line.startswith('debugfs: ea_list "'):
            current = line[len('debugfs: ea_list "'):-1]
        elif line.strip() and current is not None and (not found or found[-1] != current):
            found.append(current)
    return found


def extract_ext4(disk: Path, dest: Path, workdir: Path) -> dict:
    """Copy the ext4 filesystem in `disk` (qcow2 or raw) out to the new directory `dest`."""
    started = time.monotonic()
    raw = disk
    if _disk_format(disk) != "raw":
        raw = workdir / "fs.raw"
        _run(["qemu-img", "convert", "-f", _disk_format(disk), "-O", "raw", str(disk), str(raw)],
             what=f"converting {disk} to raw")
    dest.mkdir(parents=True)
    _run(["debugfs", "-R", f'rdump / "{dest}"', str(raw)], what=f"extracting {disk} with debugfs")
    # rdump writes "/" as dest itself; everything else lands under dest.
    directories = ["/"] + sorted("/" + os.path.relpath(os.path.join(top, d), dest)
                                 for top, dirs, _files in os.walk(dest) for d in dirs)
    entries = _debugfs_listing(raw, directories)
    first_path: dict[int, str] = {}
    fixed = linked = fifos = skipped = 0
    for path, entry in sorted(entries.items()):
        target = dest / path.lstrip("/") if path != "/" else dest
        kind = stat.S_IFMT(entry.mode)
        if kind == stat.S_IFREG and entry.inode in first_path:
            # a hard link: rdump wrote a second copy; make it a link again
            os.unlink(target)
            os.link(dest / first_path[entry.inode].lstrip("/"), target)
            linked += 1
            continue
        first_path.setdefault(entry.inode, path)
        if kind == stat.S_IFIFO and not os.path.lexists(target):
            os.mkfifo(target)
            fifos += 1
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK) and not os.path.lexists(target):
            skipped += 1   # devices come from the container runtime; sockets from their services
            log.info("not extracting special file %s (mode %o)", path, entry.mode)
            continue
        if not os.path.lexists(target):
            raise RootfsError(f"debugfs did not extract {path}")
        os.lchown(target, entry.uid, entry.gid)
        if kind != stat.S_IFLNK:
            os.chmod(target, stat.S_IMODE(entry.mode))  # after chown, which clears set-id bits
        fixed += 1
    with_xattrs = _files_with_xattrs(raw, [p for p, e in entries.items() if stat.S_ISREG(e.mode)])
    if with_xattrs:
        log.warning("%d file(s) of %s have extended attributes (file capabilities, ACLs) that containers "
                    "will not get: %s", len(with_xattrs), disk, ", ".join(with_xattrs[:10]))
    if raw != disk:
        raw.unlink()
    return {"entries": fixed, "hard_links": linked, "fifos": fifos, "special_skipped": skipped,
            "xattr_files_not_copied": with_xattrs,
            "extract_seconds": round(time.monotonic() - started, 2)}


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def base_tree(image: str | os.PathLike, cache: Path | None = None) -> Path:
    """The cached, extracted root tree of `image` (made on first use, shared read-only by copies)."""
    cache = Path(cache) if cache is not None else paths.cache_dir() / "rootfs"
    folder = cache / image_key(image)
    tree = folder / "tree"
    if (folder / "manifest.json").is_file():
        return tree
    disk = image_disk(image)
    with exclusive_lock(cache / ".lock"):
        if (folder / "manifest.json").is_file():
            return tree
        for leftover in cache.glob(".tmp-*"):   # a killed extraction (we hold the lock)
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache))
        try:
            log.info("extracting %s into %s", disk, folder)
            facts = extract_ext4(disk, tmp / "tree", tmp)
            facts["kernel_bytes_dropped"] = _drop_kernel(tmp / "tree")
            facts.update(source=str(disk), format=EXTRACT_FORMAT, bytes=tree_bytes(tmp / "tree"),
                         made_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            (tmp / "manifest.json").write_text(json.dumps(facts, indent=2) + "\n")
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return tree


def _drop_kernel(tree: Path) -> int:
    """A container runs on the host's kernel: its tree needs no kernel, initrd or modules."""
    dropped = 0
    for rel in ("boot", "usr/lib/modules"):
        folder = tree / rel
        if not folder.is_dir() or folder.is_symlink():
            continue
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                dropped += tree_bytes(child)
                shutil.rmtree(child)
            else:
                dropped += os.lstat(child).st_blocks * 512
                child.unlink()
    for name in ("vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"):
        link = tree / name
        if link.is_symlink():
            link.unlink()
    return dropped


def tree_bytes(path: Path) -> int:
    """Bytes allocated on disk by the tree (hard links once), like `du -s`."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


# --- per-container copies ---------------------------------------------------------

def copy_tree(base: Path, dest: Path) -> None:
    """dest becomes a copy of base: owners, modes, hard links, times; copy-on-write where possible."""
    if dest.exists():
        raise RootfsError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(["cp", "-a", "--reflink=auto", "--", str(base), str(dest)], what=f"copying {base} to {dest}")


def shift_ownership(tree: Path, offset: int, count: int = ID_RANGE) -> int:
    """Add `offset` to the uid and gid of every file in tree (each inode once); returns how many.

    chown clears set-uid/set-gid bits, so those modes are put back afterwards.
    """
    if offset <= 0:
        raise RootfsError(f"uid offset must be positive, got {offset}")
    seen: set[int] = set()
    dev = os.lstat(tree).st_dev

    def shift(path: str) -> None:
        st = os.lstat(path)
        if st.st_ino in seen or st.st_dev != dev:
            return
        seen.add(st.st_ino)
        if st.st_uid >= count or st.st_gid >= count:
            raise RootfsError(f"{path} is owned by {st.st_uid}:{st.st_gid}, outside the container's "
                              f"0..{count - 1} range (already shifted?)")
        os.lchown(path, st.st_uid + offset, st.st_gid + offset)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    shift(str(tree))
    for top, dirs, files in os.walk(tree):
        for name in dirs + files:
            shift(os.path.join(top, name))
    return len(seen)


def _write(tree: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = tree / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    os.chmod(path, mode)


def prepare_system_container(tree: Path, hostname: str) -> None:
    """Make an image's tree boot as a container: its name, DHCP on eth*, nothing that waits for
    hardware, and no cloud-init (there is no seed; the container is configured here instead)."""
    _write(tree, "etc/hostname", hostname + "\n")
    _write(tree, "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
                              "::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(tree, "etc/fstab", "# a container: its root is set up by libvirt\n")
    _write(tree, "etc/cloud/cloud-init.disabled", "vdesk: containers are configured by the provider\n")
    _write(tree, "etc/systemd/network/80-vdesk-container.network",
           "# vdesk: every container NIC takes its address from the libvirt network's DHCP\n"
           "[Match]\nName=eth*\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n")
    for unit in ("serial-getty@ttyS0.service",):
        link = tree / "etc/systemd/system/getty.target.wants" / unit
        if link.is_symlink():
            link.unlink()
    # Units that need hardware or mounts a container is not given: masked, so the
    # system reaches `running` rather than `degraded`.
    for unit in _MASKED_IN_CONTAINERS:
        link = tree / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(link):
            link.unlink()
        os.symlink("/dev/null", link)
    # No cloud-init means nobody makes SSH host keys on first boot: make them now.
    if (tree / "usr/sbin/sshd").exists() and not list((tree / "etc/ssh").glob("ssh_host_*_key")):
        if shutil.which("ssh-keygen"):
            _run(["ssh-keygen", "-A", "-f", str(tree)], what="making the container's SSH host keys")
        else:
            log.warning("ssh-keygen is not installed: %s gets no SSH host keys", hostname)
    # An empty machine-id makes systemd generate one per boot; a per-container one is steadier.
    machine_id = hashlib.sha256(f"vdesk-container/{hostname}/{time.time_ns()}".encode()).hexdigest()[:32]
    _write(tree, "etc/machine-id", machine_id + "\n", 0o444)


@dataclasses.dataclass(frozen=True)
class Provisioned:
    rootfs: Path
    seconds: float
    copy_seconds: float
    shift_seconds: float
    files: int
    bytes: int


def provision(image: str | os.PathLike, dest: Path, *, hostname: str, uid_base: int | None,
              system: bool = True, cache: Path | None = None) -> Provisioned:
    """Give one container its own root tree at `dest` (which must not exist)."""
    started = time.monotonic()
    base = base_tree(image, cache)
    try:
        copy_tree(base, dest)
        copied = time.monotonic()
        if system:
            prepare_system_container(dest, hostname)
        files = shift_ownership(dest, uid_base) if uid_base else 0
    except BaseException:
        remove_tree(dest)
        raise
    done = time.monotonic()
    return Provisioned(dest, round(done - started, 2), round(copied - started, 2), round(done - copied, 2),
                       files, tree_bytes(dest))


def remove_tree(path: Path) -> None:
    """Delete a container's directory; never crosses into another filesystem mounted below it."""
    if not os.path.lexists(path):
        return
    with open("/proc/self/mountinfo") as fh:
        prefix = str(path).rstrip("/") + "/"
        mounted = [line.split()[4] for line in fh if line.split()[4].startswith(prefix)]
    if mounted:
        raise RootfsError(f"refusing to delete {path}: still mounted below it: {mounted}")
    try:
        shutil.rmtree(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise RootfsError(f"could not delete {path}: {exc}") from exc
