"""vdesk's own copy of Debian's package index (bookworm main, -updates, -security), for checks at preview.

apt itself fetches and reads it, with a configuration of ours (APT_CONFIG) that
points every directory into $VDESK_CACHE/debian-index/: the host's own apt
sources, lists and dpkg status are never read or touched. The lists are
refreshed when older than a day. Two questions are answered from it:

- does Debian have this package (or is it a virtual one, and who provides it)?
- what would an image hold: the dependency closure of a package list,
  computed by `apt-get -s install` against an empty dpkg status.
"""
from __future__ import annotations

import contextlib
import difflib
import fcntl
import functools
import hashlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from debian import deb822

from ..errors import VdeskError
from ..paths import cache_dir

log = logging.getLogger(__name__)

MAX_AGE_S = 24 * 3600
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SUITE = "bookworm"
_FORMAT = "vdesk-debian-index/1"        # of names.json; bump when what is parsed changes
_APT_TIMEOUT_S = 300
_FIELDS = ("Package", "Version", "Provides", "Priority")   # what is parsed of each stanza


class IndexUnavailable(VdeskError):
    """There is no package index, and it could not be fetched."""


def default_sources() -> list[str]:
    mirror = os.environ.get("VDESK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("VDESK_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    signed = f"[signed-by={KEYRING}]"
    return [f"deb {signed} {mirror} {SUITE} main", f"deb {signed} {mirror} {SUITE}-updates main",
            f"deb {signed} {security} {SUITE}-security main"]


class PackageIndex:
    """Debian's package lists in a directory of vdesk's, read and fetched through apt."""

    def __init__(self, root: Path | None = None, sources: Sequence[str] | None = None,
                 max_age_s: float = MAX_AGE_S):
        self.root = Path(root) if root is not None else cache_dir() / "debian-index" / SUITE
        self.sources = list(sources) if sources is not None else default_sources()
        self.max_age_s = max_age_s
        self._names: dict | None = None

    # -- apt's configuration -----------------------------------------------------------
    @property
    def lists(self) -> Path:
        return self.root / "state" / "lists"

    def _prepare(self) -> Path:
        """Write the directories and apt.conf (every apt directory inside root); return apt.conf."""
        r = self.root
        for d in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/sources.list.d",
                  "etc/preferences.d", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "status").touch()
        sources = "".join(line + "\n" for line in self.sources)
        if not (r / "etc/sources.list").is_file() or (r / "etc/sources.list").read_text() != sources:
            (r / "etc/sources.list").write_text(sources)
            (r / "stamp").unlink(missing_ok=True)   # other sources: fetch again
        conf = "".join(f'{key} "{value}";\n' for key, value in (
            ("Dir::Etc::Parts", r / "etc/apt.conf.d"),     # read first: the host's apt.conf.d is never read
            ("Dir::Etc::Main", r / "etc/apt.conf"),
            ("Dir::State", r / "state"),
            ("Dir::State::status", r / "status"),
            ("Dir::Cache", r / "cache"),
            ("Dir::Etc::SourceList", r / "etc/sources.list"),
            ("Dir::Etc::SourceParts", r / "etc/sources.list.d"),
            ("Dir::Etc::Preferences", r / "etc/preferences"),
            ("Dir::Etc::PreferencesParts", r / "etc/preferences.d"),
            ("Dir::Log", r / "log"),
            ("APT::Architecture", "amd64"),
            ("Acquire::Languages", "none"),
            ("Acquire::Retries", "2"),
            ("APT::Install-Recommends", "false"),
            ("Debug::NoLocking", "true"),
        ))
        conf += 'APT::Architectures { "amd64"; };\n'
        if os.geteuid() == 0:
            conf += 'APT::Sandbox::User "root";\n'          # our files, no _apt user needed
        path = r / "apt.conf"
        if not path.is_file() or path.read_text() != conf:
            path.write_text(conf)
        return path

    def _apt(self, *args: str, timeout: float = _APT_TIMEOUT_S) -> subprocess.CompletedProcess:
        env = {**os.environ, "APT_CONFIG": str(self._prepare()), "LC_ALL": "C"}
        try:
            return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise IndexUnavailable(f"{args[0]} is not installed (Debian's apt)") from None
        except subprocess.TimeoutExpired:
            raise IndexUnavailable(f"`{' '.join(args)}` took longer than {timeout:g} s") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- freshness ------------------------------------------------------------------
    def age_s(self) -> float | None:
        """Seconds since the lists were last fetched, or None if they never were."""
        try:
            return time.time() - (self.root / "stamp").stat().st_mtime
        except OSError:
            return None

    def ensure(self) -> None:
        """Fetch the lists when there are none or they are older than max_age_s.

        A failed refresh keeps the old lists (and says so); with no lists at all it raises IndexUnavailable.
        """
        age = self.age_s()
        if age is not None and age < self.max_age_s:
            return
        with self._locked():
            age = self.age_s()
            if age is not None and age < self.max_age_s:
                return          # another process refreshed it meanwhile
            started = time.monotonic()
            result = self._apt("apt-get", "-q", "update")
            if result.returncode == 0 and not _fetch_failed(result.stderr):
                (self.root / "stamp").touch()
                self._names = None
                log.info("Debian package index refreshed in %.1f s (%s)", time.monotonic() - started, self.root)
                return
            why = (result.stderr.strip() or result.stdout.strip())[-800:]
            if not any(self.lists.glob("*_Packages")):
                raise IndexUnavailable(f"Debian's package index could not be fetched into {self.root}: {why}")
            self._names = None
            log.warning("Debian package index not (fully) refreshed; using the lists there are: %s", why)

    # -- what Debian has --------------------------------------------------------------
    def names(self) -> dict:
        """{"packages": {name: version}, "provides": {virtual: [providers]}, "required": [names]}."""
        self.ensure()
        if self._names is not None:
            return self._names
        files = sorted(p for p in self.lists.glob("*_Packages") if p.is_file())
        if not files:
            raise IndexUnavailable(f"no package lists in {self.lists}")
        key = [_FORMAT, [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]]
        cached = self.root / "names.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(cached.read_text())
            if data.get("key") == json.loads(json.dumps(key)):
                self._names = data
                return data
        data = {"key": key, **_parse_packages(files)}
        tmp = cached.with_name(f".names.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cached)
        self._names = data
        return data

    def problem(self, name: str) -> str | None:
        """Why `name` cannot be installed from Debian, or None if it can."""
        names = self.names()
        if name in names["packages"]:
            return None
        providers = names["provides"].get(name)
        if providers and len(providers) == 1:
            return None          # apt installs its one provider
        if providers:
            shown = ", ".join(providers[:8]) + (", ..." if len(providers) > 8 else "")
            return f"{name!r} is a virtual package in Debian {SUITE}: name one that provides it ({shown})"
        candidates = [n for n in names["packages"] if n[:2] == name[:2]]
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.75)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"{name!r} is not a package of Debian {SUITE} (main, updates, security){hint}"

    def closure(self, packages: Iterable[str]) -> frozenset[str]:
        """Every package an `apt-get install --no-install-recommends` of `packages` would leave installed,
        starting from nothing (debootstrap's required packages must be in the list)."""
        wanted = sorted(set(packages))
        names = self.names()
        digest = hashlib.sha256(json.dumps([names["key"], wanted]).encode()).hexdigest()[:16]
        cached = self.root / "closures" / f"{digest}.json"
        with contextlib.suppress(OSError, ValueError):
            return frozenset(json.loads(cached.read_text()))
        result = self._apt("apt-get", "-s", "-q", "install", "--no-install-recommends", *wanted)
        if result.returncode != 0:
            errors = [line for line in (result.stdout + result.stderr).splitlines()
                      if line.startswith(("E:", " ")) or "but" in line]
            raise VdeskError("apt cannot install these packages together: " + " | ".join(errors[-12:]))
        installed = sorted({line.split()[1] for line in result.stdout.splitlines() if line.startswith("Inst ")})
        cached.parent.mkdir(exist_ok=True)
        tmp = cached.with_name(f".{digest}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(installed))
        os.replace(tmp, cached)
        return frozenset(installed)

    def required(self) -> list[str]:
        """Debian's Priority: required packages (what debootstrap's minbase installs, with apt)."""
        return list(self.names()["required"])


def _fetch_failed(stderr: str) -> bool:
    """apt-get update exits 0 when an index could not be fetched; it says so on stderr."""
    return any(line.startswith(("W: Failed to fetch", "E:", "Err:")) or "index files failed" in line
               for line in stderr.splitlines())


def _parse_packages(files: Sequence[Path]) -> dict:
    """Package, Version, Provides and Priority of every stanza of apt's Packages lists (python-debian's
    deb822; about 8 s for bookworm's 64,000 stanzas, once per refresh: names.json keeps the result)."""
    packages: dict[str, str] = {}
    provides: dict[str, set[str]] = {}
    required: set[str] = set()
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for stanza in deb822.Packages.iter_paragraphs(fh, fields=_FIELDS, use_apt_pkg=False):
                name = stanza.get("Package")
                if not name:
                    continue
                if "Version" in stanza:
                    packages.setdefault(name, stanza["Version"])
                for alternatives in stanza.relations["provides"]:
                    for virtual in alternatives:
                        provides.setdefault(virtual["name"], set()).add(name)
                if stanza.get("Priority") == "required":
                    required.add(name)
    return {"packages": packages, "provides": {k: sorted(v) for k, v in provides.items()},
            "required": sorted(required)}


@functools.lru_cache(maxsize=1)
def shared_index() -> PackageIndex:
    """The index every stack shares ($VDESK_CACHE/debian-index/bookworm)."""
    return PackageIndex()
