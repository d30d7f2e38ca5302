"""An imported image arrives whole: its content is read back from the host and compared, once per host.

On the project's own libvirtd: a good upload records the sha256 the host has; an upload that goes wrong on
the way (here: one byte changed after the digest was taken) fails naming the volume and host, and leaves
no volume behind. Both ways of reading it back: the volume's file, on a host that is this machine, and
streamed back through libvirt, as from a host elsewhere.
"""
from __future__ import annotations

import hashlib
import os

import libvirt
import pytest

from components.errors import VdeskError
from components.resources import volume
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

pytestmark = pytest.mark.integration
MiB = 1024**2


@pytest.fixture
def pool(own_host, tmp_path):
    pp = PoolProvider()
    name = f"imp{os.getpid()}"
    created = pp.create(checked(pp, {"host_uri": own_host.uri, "name": name, "path": str(tmp_path / "pool")}))
    yield name
    pp.delete(created.id, created.outs)


@pytest.mark.parametrize("read_back", ["file here", "through libvirt"])
def test_an_import_is_verified_on_the_host_and_a_corrupted_one_is_refused(own_host, pool, tmp_path, monkeypatch,
                                                                         read_back):
    if read_back == "through libvirt":                # as for a host that is not this machine
        monkeypatch.setattr(volume, "_file_here", lambda conn, vol: None)
    else:                                               # the own libvirtd is this machine: no second transfer
        def not_streamed(*_args):
            raise AssertionError("the volume was streamed back although its file is on this machine")
        monkeypatch.setattr(volume, "volume_sha256", not_streamed)
    data = bytes((i * 13 + i // 512) % 251 for i in range(3 * MiB + 17))
    image = tmp_path / "image.raw"
    image.write_bytes(data)
    vp = VolumeProvider()
    props = checked(vp, {"host_uri": own_host.uri, "pool": pool, "name": "good.raw", "format": "raw",
                         "source_path": str(image), "source_id": "v1"})
    good = vp.create(props)
    assert good.outs["sha256"] == hashlib.sha256(data).hexdigest()
    assert vp.read(good.id, good.outs).outs["sha256"] == good.outs["sha256"]
    vp.delete(good.id, good.outs)

    real_upload = volume.upload_file

    def upload_with_a_flipped_byte(conn, vol, path):
        sent = hashlib.sha256(open(path, "rb").read()).hexdigest()
        bad = tmp_path / "bad.raw"
        bad.write_bytes(data[:MiB] + bytes([data[MiB] ^ 1]) + data[MiB + 1:])
        real_upload(conn, vol, str(bad))
        return sent

    monkeypatch.setattr(volume, "upload_file", upload_with_a_flipped_byte)
    with pytest.raises(VdeskError, match=r"volume 'bad.raw' on .*: the uploaded content does not match .*image.raw "
                                         r"\(sha256 [0-9a-f]{64} on the host, [0-9a-f]{64} sent\)"):
        vp.create(checked(vp, {**props, "name": "bad.raw"}))
    conn = libvirt.open(own_host.uri)
    try:
        assert conn.storagePoolLookupByName(pool).listVolumes() == []
    finally:
        conn.close()
