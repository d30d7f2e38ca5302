"""What root runs later, installed where only root can change it: virtiofsd wrappers, the gateway's code.

libvirtd runs a domain's virtiofsd <binary>, as root, at every start of the guest (autostart
at boot included), long after the run that defined it. A path into the checkout would let
whoever can write the checkout run code as root then; so each run installs a copy of the
wrapper under LIBEXEC_DIR (or $VDESK_LIBEXEC), owned by root and 0755, in directories only
root can write, and checks all of that before libvirt is given its path.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import VdeskError
from .paths import PACKAGE, shipped

log = logging.getLogger(__name__)

LIBEXEC_DIR = "/usr/local/libexec/vdesk"
# installed name -> the file in tools/ it is a copy of (one wrapper, its mode read from the name it runs as)
WRAPPERS = {"virtiofsd-ro": "virtiofsd-share", "virtiofsd-rw": "virtiofsd-share"}
MODE = 0o755


class InstallError(VdeskError):
    """A program root runs cannot be installed, or its installed copy is not root's alone."""


def libexec_dir() -> Path:
    return Path(os.environ.get("VDESK_LIBEXEC") or LIBEXEC_DIR)


def installed_path(name: str) -> str:
    """Where `name` is installed (what the domain XML names), without touching anything."""
    return str(libexec_dir() / name)


def _owners() -> tuple[int, ...]:
    return (0, os.geteuid())     # root; or the runner itself, when an unprivileged libvirtd runs what it installs


def owner_problem(path: str | os.PathLike) -> str | None:
    """Why someone other than root could change what runs at `path`, or None: the file and every
    directory above it must be root's, not symlinks, and not writable by group or others (a
    sticky directory such as /tmp passes: no one but an entry's owner may replace that entry)."""
    path = Path(os.path.abspath(path))
    for p in [path, *path.parents]:
        try:
            st = os.lstat(p)
        except OSError as exc:
            return f"{p}: {exc.strerror}"
        if stat.S_ISLNK(st.st_mode):
            return f"{p} is a symlink"
        if st.st_uid not in _owners():
            return f"{p} is owned by uid {st.st_uid}, not root"
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_mode & 0o022 and not (sticky_dir and p != path):
            return f"{p} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _program_problem(path: Path) -> str | None:
    problem = owner_problem(path)
    if problem is None:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != MODE:
            return f"{path} is not a regular file of mode {MODE:04o} (mode {stat.S_IMODE(st.st_mode):04o})"
    return problem


def install(name: str) -> str:
    """Install (or refresh) `name` under libexec_dir() and return its path, checked root's alone."""
    source = shipped(f"tools/{WRAPPERS[name]}").read_bytes()
    folder = libexec_dir()
    folder.mkdir(mode=MODE, parents=True, exist_ok=True)
    if problem := owner_problem(folder):
        raise InstallError(f"cannot install {name}: {problem}")
    target = folder / name
    with contextlib.suppress(OSError):
        if target.read_bytes() == source and _program_problem(target) is None:
            return str(target)
    temporary = folder / f".{name}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o700)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(source)
            os.fchmod(out.fileno(), MODE)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    if problem := _program_problem(target):
        raise InstallError(f"installed {name}, but {problem}")
    log.info("installed %s", target)
    return str(target)


def install_package() -> str:
    """A root-owned copy of vdesk's Python package for a root daemon (the console gateway) to import,
    so that its PYTHONPATH names nothing another user can write: returns the directory to put on it.
    The copy is named by its content's digest, so a daemon keeps importing the code it started with."""
    package = PACKAGE      # components/ in a checkout, vdesk/ when installed: copied under its own name
    # its modules and the files they read (the portal's pages and styles), never bytecode
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix != ".pyc")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    folder = libexec_dir() / "python"
    target = folder / digest.hexdigest()[:16]
    folder.mkdir(mode=MODE, parents=True, exist_ok=True)
    if problem := owner_problem(folder):
        raise InstallError(f"cannot install vdesk's package: {problem}")
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            os.chmod(staging, MODE)
            for path in files:
                copy = staging / package.name / path.relative_to(package)
                copy.parent.mkdir(mode=MODE, parents=True, exist_ok=True)
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                with os.fdopen(fd, "wb") as out:
                    out.write(path.read_bytes())
            with contextlib.suppress(FileExistsError, OSError):
                os.rename(staging, target)       # another run may have installed the same digest meanwhile
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    for path in [target, *target.rglob("*")]:
        if problem := owner_problem(path):
            raise InstallError(f"vdesk's installed package is not root's alone: {problem}")
    return str(target)
