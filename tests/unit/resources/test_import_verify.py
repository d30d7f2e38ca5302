"""An imported image is compared where it landed: the volume's file when it is on this machine, else
what libvirt streams back (the live test, tests/integration/test_image_import_live.py, runs both)."""
import hashlib

from components import xmlmodel
from components.resources import volume


def test_a_volume_whose_file_is_not_here_is_read_back_through_libvirt(conn):
    pool = conn.storagePoolLookupByName("default-pool")
    vol = pool.createXML(xmlmodel.Volume(name="verify.raw", format="raw", capacity=4096).to_xml(), 0)
    try:
        assert volume._file_here(conn, vol) is None     # the test driver's volume path is no file of this machine
    finally:
        vol.delete(0)


def test_a_file_is_hashed_up_to_the_length_sent_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(volume, "_CHUNK", 7)
    data = bytes(range(256)) * 3
    path = tmp_path / "image.raw"
    path.write_bytes(data + b"tail the upload did not send")
    assert volume.file_sha256(str(path), len(data)) == hashlib.sha256(data).hexdigest()
