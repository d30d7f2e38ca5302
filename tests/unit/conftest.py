"""Shared fixtures of the unit tier."""
import libvirt
import pytest

TEST_DRIVER = "test:///default"


@pytest.fixture
def conn():
    """libvirt's test driver: a real libvirt API with no daemon. Its state lives while a connection is open."""
    c = libvirt.open(TEST_DRIVER)
    yield c
    c.close()
