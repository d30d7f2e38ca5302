"""Hostile strings at every place a value reaches libvirt XML, a shell command, a host path or cloud-init.

Each generated case ends one of three ways: refused (a clear error), or rendered so that
reading it back gives exactly the value that went in and nothing else; anything else is an
unescaped value and fails the test. The ledger counts them for the tier's summary.
"""
from __future__ import annotations

import os
import shlex

import yaml
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from components import xmlmodel
from components.cloudinit import CloudInitError, render_seed
from components.guest.ssh import render_command
from components.host import policy
from tests.reliability import ledger

# Quotes, newlines, XML metacharacters, '../', shell metacharacters, very long strings, unicode.
NASTY = st.sampled_from(["'", '"', "\n", "\r\n", "<", ">", "&", "]]>", "<!--", "../", "/..", "$(", "`", ";", "|",
                         "&&", "\\", "\t", "\x00", "\x1b[2J", "${x}", "%s", "{{ x }}", "{% x %}", "#", ": ", "- ",
                         "\u202e", "é", "🖥", "\ufeff", " ", "*", "?", "~"])
# Never empty: an empty value is no escaping question (an empty XML element reads back as absent), and
# empty names and paths are refused when the stack is read (`users[0].name: '' is not a usable login name`).
HOSTILE = st.lists(st.one_of(NASTY, st.text(max_size=8)), min_size=1, max_size=12).map("".join).filter(bool) | \
    st.text(min_size=1, max_size=40) | st.builds(lambda s, n: s * n, NASTY, st.integers(200, 3000))


@given(name=HOSTILE, path=HOSTILE, cmdline=HOSTILE, owner=HOSTILE)
def test_values_in_libvirt_xml_are_escaped_or_refused(name, path, cmdline, owner):
    dom = xmlmodel.Domain(type="qemu", name=name, memory_kib=1024, os_type="hvm", kernel=path, cmdline=cmdline,
                          owner=xmlmodel.Owner(stack=owner, resource=name))
    dom.disks.append(xmlmodel.Disk(type="file", device="disk", source_file=path, target_dev="vda"))
    try:
        text = dom.to_xml()
    except ValueError:                      # lxml refuses characters XML cannot carry
        ledger.hostile("rejected")
        return
    back = xmlmodel.Domain.from_xml(text)
    tree = etree.fromstring(text.encode() if isinstance(text, str) else text)
    same = (back.name, back.kernel, back.cmdline, back.disks[0].source_file, back.owner.stack) == \
        (name, path, cmdline, path, owner)
    shape = [el.tag for el in tree.iter()] == [el.tag for el in etree.fromstring(
        xmlmodel.Domain(type="qemu", name="x", memory_kib=1024, os_type="hvm", kernel="k", cmdline="c",
                        owner=xmlmodel.Owner(stack="s", resource="x"),
                        disks=[xmlmodel.Disk(type="file", device="disk", source_file="p", target_dev="vda")]
                        ).to_xml().encode()).iter()]
    ledger.hostile("rendered_safely" if same and shape else "unescaped")
    assert same and shape, (name, path, cmdline)


@given(args=st.lists(HOSTILE.filter(lambda s: "\x00" not in s), min_size=1, max_size=5), sudo=st.booleans())
def test_arguments_reach_the_guest_shell_as_exactly_those_arguments(args, sudo):
    line = render_command(args, sudo=sudo)
    parsed = shlex.split(line)
    got = parsed[3:] if sudo else parsed
    ledger.hostile("rendered_safely" if got == args else "unescaped")
    assert got == args


@given(script=HOSTILE.filter(lambda s: "\x00" not in s and s.strip()))
def test_a_command_line_run_with_sudo_is_one_quoted_argument(script):
    parsed = shlex.split(render_command(script, sudo=True))
    ledger.hostile("rendered_safely" if parsed == ["sudo", "-n", "--", "sh", "-c", script] else "unescaped")
    assert parsed == ["sudo", "-n", "--", "sh", "-c", script]


@given(path=HOSTILE)
def test_a_hostile_path_is_refused_or_really_inside_an_allowed_root(path, tmp_path_factory):
    root = tmp_path_factory.mktemp("allowed")
    rules = policy.Policy(images=(str(root),), pools=(), shares=(), container_mounts=(), devices=())
    for candidate in (path, f"{root}/{path}"):
        problem = rules.path_problem("images", candidate)
        if problem:
            ledger.hostile("rejected")
            continue
        inside = os.path.realpath(candidate).startswith(str(root) + "/") or os.path.realpath(candidate) == str(root)
        ledger.hostile("rendered_safely" if inside else "unescaped")
        assert inside, candidate


@given(uri=HOSTILE | st.builds(lambda a, b: f"qemu+ssh://{a}/system?{b}", HOSTILE, HOSTILE))
def test_a_hostile_uri_is_refused_or_a_plain_libvirt_uri(uri):
    problem = policy.defaults().uri_problem(uri)
    if problem:
        ledger.hostile("rejected")
        return
    plain = uri.split(":", 1)[0] in ("qemu", "lxc", "qemu+ssh", "qemu+unix", "qemu+libssh2", "qemu+tls", "test")
    ledger.hostile("rendered_safely" if plain and "command=" not in uri else "unescaped")
    assert plain and "command=" not in uri


KEY_BODY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9xHmMbWnJ7zS0pZm4n1l3E2b0h5n7cPz4q2W9kYt3u"


@given(comment=HOSTILE, timezone=HOSTILE, group=HOSTILE)
def test_values_in_cloud_init_documents_keep_the_documents_shape(comment, timezone, group, host_keys):
    variables = {
        "hostname": "desk", "instance_id": "iid-desk",
        "users": [{"name": "alice", "groups": [group], "ssh_authorized_keys": [f"{KEY_BODY} {comment}"]}],
        "host_keys": host_keys, "interfaces": [{"mac": "52:54:00:00:00:01", "dhcp4": True}],
        "extra": {"timezone": timezone},
    }
    try:
        docs = render_seed("desktop", variables)
    except CloudInitError:                       # refused, naming the variable
        ledger.hostile("rejected")
        return
    data = yaml.safe_load(docs.user_data)
    user = next(u for u in data["users"] if isinstance(u, dict) and u.get("name") == "alice")
    same = (user["ssh_authorized_keys"][-1] == f"{KEY_BODY} {comment}" and group in user["groups"]
            and data.get("timezone") == timezone)
    keys = set(data) <= {"hostname", "preserve_hostname", "manage_etc_hosts", "ssh_deletekeys", "ssh_genkeytypes",
                         "ssh_keys", "ssh_pwauth", "disable_root", "bootcmd", "users", "timezone", "fqdn"}
    ledger.hostile("rendered_safely" if same and keys else "unescaped")
    assert same and keys, (comment, timezone, group)
