"""vdesk's copy of a package index, fetched and read by the real apt, from a local repository (no network)."""
from __future__ import annotations

import os
import time

import pytest

from components.images.debian_index import IndexUnavailable, PackageIndex, _parse_packages

PACKAGES = """\
Package: base-files
Version: 12.4
Architecture: amd64
Priority: required
Filename: ./base-files.deb
Size: 1
Description: base

Package: git
Version: 1:2.39.5-0+deb12u2
Architecture: amd64
Depends: libcurl3-gnutls, perl
Filename: ./git.deb
Size: 1
Description: git

Package: libcurl3-gnutls
Version: 7.88.1
Architecture: amd64
Filename: ./libcurl.deb
Size: 1
Description: curl

Package: perl
Version: 5.36.0
Architecture: amd64
Filename: ./perl.deb
Size: 1
Description: perl

Package: mawk
Version: 1.3.4
Architecture: amd64
Provides: awk
Filename: ./mawk.deb
Size: 1
Description: mawk

Package: gawk
Version: 5.2.1
Architecture: amd64
Provides: awk
Filename: ./gawk.deb
Size: 1
Description: gawk

Package: exim4-daemon-light
Version: 4.96
Architecture: amd64
Provides: mail-transport-agent
Filename: ./exim.deb
Size: 1
Description: exim

"""


@pytest.fixture
def repo(tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "Packages").write_text(PACKAGES)
    return folder


@pytest.fixture
def index(tmp_path, repo):
    return PackageIndex(tmp_path / "index", sources=[f"deb [trusted=yes] file:{repo} ./"])


def test_lookups_come_from_the_fetched_lists(index):
    assert index.problem("git") is None
    assert index.problem("mail-transport-agent") is None     # one provider: apt installs it
    assert index.problem("awk") == ("'awk' is a virtual package in Debian bookworm: name one that provides it "
                                    "(gawk, mawk)")
    assert index.problem("gti").startswith("'gti' is not a package of Debian bookworm")
    assert index.required() == ["base-files"]


def test_a_close_name_is_suggested(index):
    assert "(did you mean git?)" in index.problem("gitt")


def test_closure_is_what_apt_would_install(index):
    assert index.closure(["git"]) == {"git", "libcurl3-gnutls", "perl"}
    assert index.closure(["base-files", "mawk"]) == {"base-files", "mawk"}


def test_the_lists_are_refreshed_when_older_than_a_day(index, repo):
    index.names()
    stamp = index.root / "stamp"
    fetched = stamp.stat().st_mtime
    index.names()
    assert stamp.stat().st_mtime == fetched, "fresh lists are not fetched again"
    (repo / "Packages").write_text(PACKAGES + "Package: vim\nVersion: 9.0\nArchitecture: amd64\n"
                                              "Filename: ./vim.deb\nSize: 1\nDescription: vim\n\n")
    assert index.problem("vim") is not None                  # still the day-old copy
    day_old = time.time() - 25 * 3600
    os.utime(stamp, (day_old, day_old))
    again = PackageIndex(index.root, sources=index.sources)
    assert again.problem("vim") is None


def test_the_hosts_own_apt_is_never_read_or_touched(index):
    index.names()
    conf = (index.root / "apt.conf").read_text()
    for key in ("Dir::Etc::Parts", "Dir::State", "Dir::State::status", "Dir::Cache", "Dir::Etc::SourceList"):
        assert f'{key} "{index.root}' in conf, key
    assert (index.root / "status").read_text() == ""        # an empty dpkg status: closures start from nothing


def test_no_lists_and_nothing_to_fetch_is_a_clear_error(tmp_path):
    index = PackageIndex(tmp_path / "index", sources=[f"deb [trusted=yes] file:{tmp_path / 'missing'} ./"])
    with pytest.raises(IndexUnavailable, match="could not be fetched"):
        index.problem("git")


def test_a_stanza_is_read_as_debian_writes_it(tmp_path):
    """Versioned and listed Provides, folded fields and a stanza without a Version, as in real lists."""
    lists = tmp_path / "x_Packages"
    lists.write_text("Package: libc6\nVersion: 2.36-9\nPriority: required\nProvides: libc6-x32 (= 2.36), glibc\n"
                     "Description: GNU C Library\n shared libraries\n .\n Provides: not-a-field\n\n"
                     "Package: odd\nProvides: glibc\n\nPackage: libc6\nVersion: 2.36-1\n")
    assert _parse_packages([lists]) == {"packages": {"libc6": "2.36-9"},
                                        "provides": {"libc6-x32": ["libc6"], "glibc": ["libc6", "odd"]},
                                        "required": ["libc6"]}
