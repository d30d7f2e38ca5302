"""The raw floor's plumbing: a connection per worker thread, and a round that fails in its child process."""
from __future__ import annotations

import threading

import libvirt
import pytest

from bench import floor

from ..conftest import TEST_DRIVER


def test_each_worker_thread_has_a_connection_of_its_own_reused_for_its_next_desktop():
    seen: dict[str, list] = {}
    with floor._Workers(TEST_DRIVER) as own:
        def work(tag):
            seen[tag] = [own.conn(), own.conn()]
        threads = [threading.Thread(target=work, args=(t,)) for t in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen["a"][0] is seen["a"][1] and seen["b"][0] is seen["b"][1]
        assert seen["a"][0] is not seen["b"][0]
    with pytest.raises(libvirt.libvirtError):           # closed at the end
        seen["a"][0].getVersion()


def test_a_round_that_fails_in_its_child_is_reported_with_libvirts_message(tmp_path):
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"\0" * 512)
    pool_path = tmp_path / "pool"
    fp = floor.FloorPlan(
        uri=TEST_DRIVER, pool_name="floor-main",
        pool_xml=f"<pool type='dir'><name>floor-main</name><target><path>{pool_path}</path></target></pool>",
        network_name="floor-lan", network_xml="<network><name>floor-lan</name></network>",
        images=(("floor-image-disk.qcow2", str(image), "qcow2", 512),), disk_bytes=1 << 30, seed=b"seed",
        desktops=("floor-d00",), domain_xml={"floor-d00": "<domain/>"})
    with pytest.raises(floor.FloorError) as err:
        floor.run_bounded(fp, workers=2, deadline_s=60)
    # the test driver has no volume upload: its own words reach the parent, not a pickling error or a hang
    assert not isinstance(err.value, floor.FloorHung)
    assert "not supported by the connection driver: virStorageVolUpload" in str(err.value)
