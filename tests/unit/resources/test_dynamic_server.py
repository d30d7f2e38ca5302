"""vdesk's dynamic-provider server: Pulumi's server with 32 workers and `pulumi import` support."""
import subprocess
import sys

import pytest
from pulumi.runtime import proto, rpc

from components.resources import importing
from components.errors import VdeskError

URI = "test:///default"


def test_importing_the_server_does_not_start_it():
    """Pulumi's module ends in a bare main(): loading ours must return, not serve forever."""
    done = subprocess.run([sys.executable, "-c", "import components.resources.dynamic_server"], timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_server_runs_32_workers_and_our_read():
    from components.resources import dynamic_server
    assert dynamic_server.server.futures.ThreadPoolExecutor(max_workers=4)._max_workers == 32
    assert dynamic_server.server.DynamicResourceProviderServicer.Read is dynamic_server._read_or_import


@pytest.mark.parametrize("id_,kind,props", [
    ("vdesk:network:dev-lan@qemu:///system", "network", {"host_uri": "qemu:///system", "name": "dev-lan"}),
    ("vdesk:pool:default@qemu+ssh://root@kvm2/system", "pool",
     {"host_uri": "qemu+ssh://root@kvm2/system", "name": "default"}),
    ("vdesk:volume:main/disk.qcow2@test:///default", "volume",
     {"host_uri": URI, "pool": "main", "name": "disk.qcow2"}),
    ("vdesk:domain:dev-dev@qemu:///system?socket=/run/x", "domain",
     {"host_uri": "qemu:///system?socket=/run/x", "name": "dev-dev"}),
])
def test_import_ids_name_the_provider_and_the_object(id_, kind, props):
    assert importing.parse(id_) == (kind, props)


@pytest.mark.parametrize("id_", ["vdesk:router:x@qemu:///system", "vdesk:network:dev-lan", "vdesk:volume:disk@test:///default",
                                 "5f0c1e2a-uuid"])
def test_a_bad_import_id_shows_the_forms(id_):
    with pytest.raises(VdeskError, match="vdesk:network:<name>@<libvirt URI>|<pool>/<name>"):
        importing.parse(id_)


def _read(id_):
    from components.resources import dynamic_server
    servicer = dynamic_server.server.DynamicResourceProviderServicer()
    response = servicer.Read(proto.ReadRequest(id=id_), None)
    return response.id, rpc.deserialize_properties(response.inputs), rpc.deserialize_properties(response.properties)


def test_an_import_read_returns_inputs_with_the_provider(conn):
    real_id, inputs, outputs = _read(f"vdesk:network:default@{URI}")
    assert real_id == conn.networkLookupByName("default").UUIDString()
    assert inputs["cidr"] == "192.168.122.0/24" and inputs["mode"] == "nat" and inputs["name"] == "default"
    assert inputs["__provider"] == outputs["__provider"]


def test_an_imported_domain_keeps_how_it_boots(conn):
    real_id, inputs, _ = _read(f"vdesk:domain:test@{URI}")
    assert real_id == conn.lookupByName("test").UUIDString()
    assert inputs["boot"] == "bios" and inputs["memory"] > 0 and inputs["running"] is True


def test_importing_what_does_not_exist_says_so(conn):
    assert _read(f"vdesk:network:nowhere@{URI}")[0] == ""


def test_the_server_does_not_outlive_the_engine_that_started_it():
    """A killed `pulumi up` must not leave a provider working on: it exits when its parent is gone."""
    import subprocess
    import sys
    import time
    from pathlib import Path
    child = ("import os, sys; sys.path.insert(0, os.getcwd()); "
             "from components.resources.dynamic_server import _exit_with_the_engine; "
             "_exit_with_the_engine(int(sys.argv[1]), poll_s=0.05)")
    engine = ("import os, subprocess, sys; "
              "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())], stdout=subprocess.DEVNULL); "
              "print(p.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", engine, child], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":          # exited; PID 1 has not reaped it yet
            return
        time.sleep(0.05)
    raise AssertionError("the provider server outlived its engine")


def _read_as(id_, stack):
    from components.resources import dynamic_server
    servicer = dynamic_server.server.DynamicResourceProviderServicer()
    urn = f"urn:pulumi:{stack}::vdesk::pulumi-python:dynamic:Resource::imported"
    return servicer.Read(proto.ReadRequest(id=id_, urn=urn), None).id


@pytest.mark.parametrize("kind,name,import_id", [
    ("network", "default", f"vdesk:network:default@{URI}"),
    ("pool", "default-pool", f"vdesk:pool:default-pool@{URI}"),
    ("domain", "test", f"vdesk:domain:test@{URI}"),
])
def test_importing_another_stacks_object_is_refused_naming_its_owner(kind, name, import_id, conn, tmp_path,
                                                                     monkeypatch):
    from components.resources import journal
    monkeypatch.setenv("VDESK_STATE", str(tmp_path))
    journal.note("team-a", kind, URI, name, journal.CREATED)          # team-a made it
    with pytest.raises(importing.OwnedElsewhere, match=f"{kind} '{name}' belongs to stack 'team-a'"):
        _read_as(import_id, "team-b")
    assert _read_as(import_id, "team-a") != ""                        # its own stack may import it


def test_importing_a_volume_another_stack_owns_is_refused(conn, tmp_path, monkeypatch):
    from components.resources import journal
    monkeypatch.setenv("VDESK_STATE", str(tmp_path))
    pool = conn.storagePoolLookupByName("default-pool")
    pool.createXML("<volume><name>team-a-ann.qcow2</name><capacity>1048576</capacity>"
                   "<target><format type='qcow2'/></target></volume>", 0)
    journal.note("team-a", "volume", URI, "default-pool/team-a-ann.qcow2", journal.CREATED)
    with pytest.raises(importing.OwnedElsewhere, match="belongs to stack 'team-a'"):
        _read_as(f"vdesk:volume:default-pool/team-a-ann.qcow2@{URI}", "team-b")
    assert _read_as(f"vdesk:network:default@{URI}", "team-b") != ""   # what no stack owns is imported


def test_a_urn_names_the_importing_stack():
    assert importing.urn_stack("urn:pulumi:team-b::vdesk::pulumi-python:dynamic:Resource::x") == ("team-b", "vdesk")
    assert importing.urn_stack("") == ("", "")
