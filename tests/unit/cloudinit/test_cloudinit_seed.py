"""Tier 1: the NoCloud seed ISO is deterministic, labelled "cidata" and holds exactly the three documents."""

import io
import time

import pycdlib
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.cloudinit import SeedDocuments, nocloud_iso, render_seed
from components.cloudinit.seed import read_iso

SECTOR = 2048
DOCS = SeedDocuments(
    user_data="#cloud-config\nhostname: \"desk1\"\n",
    meta_data="instance-id: \"iid-1\"\nlocal-hostname: \"desk1\"\n",
    network_config="version: 2\nethernets: {}\n",
)
NAMES = {"user-data": "user_data", "meta-data": "meta_data", "network-config": "network_config"}


@pytest.fixture(scope="module")
def image() -> bytes:
    return nocloud_iso(DOCS)


@pytest.fixture
def other_clock_and_zone(monkeypatch):
    """Move the clock a year on and the time zone far from UTC."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 365 * 86400 + 12345.678)
    monkeypatch.setenv("TZ", "Pacific/Chatham")  # UTC+12:45, not a whole hour
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_same_documents_give_identical_bytes(image):
    assert nocloud_iso(DOCS) == image


def test_bytes_do_not_depend_on_clock_or_time_zone(image, other_clock_and_zone):
    assert nocloud_iso(DOCS) == image


def test_frozen_clock_is_released(image):
    nocloud_iso(DOCS)
    assert abs(pycdlib.pycdlib.time.time() - time.time()) < 60


@pytest.mark.parametrize("field", ["user_data", "meta_data", "network_config"])
def test_any_change_changes_the_image(field, image):
    changed = SeedDocuments(**{**DOCS.__dict__, field: getattr(DOCS, field) + "# changed\n"})
    assert nocloud_iso(changed) != image


def test_volume_is_labelled_cidata(image):
    primary = image[16 * SECTOR:17 * SECTOR]
    assert primary[0:6] == b"\x01CD001"
    assert primary[40:72].decode("ascii").rstrip() == "cidata"
    joliet = image[17 * SECTOR:18 * SECTOR]
    assert joliet[0:6] == b"\x02CD001" and joliet[88:91] == b"%/E"  # Joliet UCS-2 level 3
    assert joliet[40:72].decode("utf-16-be").rstrip() == "cidata"


@pytest.mark.parametrize("facade", ["joliet", "rock_ridge"])
def test_reads_back_exactly_the_three_documents(facade, image):
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        if facade == "joliet":
            view = iso.get_joliet_facade()
            names = {child.file_identifier().decode("utf-16-be")
                     for child in view.list_children("/") if not (child.is_dot() or child.is_dotdot())}
        else:
            view = iso.get_rock_ridge_facade()
            names = {child.rock_ridge.name().decode()
                     for child in view.list_children("/") if not (child.is_dot() or child.is_dotdot())}
        assert names == set(NAMES)
        for name, field in NAMES.items():
            buffer = io.BytesIO()
            view.get_file_from_iso_fp(buffer, f"/{name}")
            assert buffer.getvalue().decode("utf-8") == getattr(DOCS, field)
    finally:
        iso.close()


def as_files(docs: SeedDocuments) -> dict[str, str]:
    return {name: getattr(docs, field) for name, field in NAMES.items()}


def test_unicode_documents_survive():
    docs = SeedDocuments(user_data="#cloud-config\n# café ☕ 🖥\n", meta_data="a: \"ü\"\n", network_config="b: 1\n")
    assert read_iso(nocloud_iso(docs)) == as_files(docs)


def test_rendered_seed_round_trips_through_the_iso():
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    docs = render_seed("developer", {
        "hostname": "dev1",
        "instance_id": "iid-dev1-1",
        "users": [{"name": "alice", "ssh_authorized_keys": [public + " alice"]}],
        "host_keys": {"ed25519_private": private, "ed25519_public": public},
        "interfaces": [{"mac": "52:54:00:00:00:01"}],
    })
    image = nocloud_iso(docs)
    assert read_iso(image) == as_files(docs)
    assert nocloud_iso(docs) == image
