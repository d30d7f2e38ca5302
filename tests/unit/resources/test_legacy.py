"""Stacks made before the package split pickled their providers under the old module names."""
import pickle

from components.resources import legacy
from components.resources.domain import DomainProvider


def test_a_provider_pickled_under_its_old_module_name_loads():
    blob = pickle.dumps(DomainProvider(), protocol=0)
    old = blob.replace(b"components.resources.domain", b"components.domain")
    assert b"components.domain\n" in old
    legacy.install()
    assert isinstance(pickle.loads(old), DomainProvider)


def test_every_old_name_points_at_a_module_that_exists():
    import importlib
    for old, new in legacy.MOVED.items():
        assert importlib.import_module(new).__name__ == new, old
