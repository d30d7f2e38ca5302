"""The kubevirt tier's real Kubernetes API server: one per test session, with KubeVirt's and CDI's CRDs."""
from __future__ import annotations

import pytest

from kubernetes import client

from tests.support import kube


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory):
    server = kube.start(tmp_path_factory.mktemp("kube") / "server")
    try:
        kube.install_crds(server)
        yield server
    finally:
        kube.stop(server)


@pytest.fixture
def kube_client(kube_server):
    api_client = kube_server.api_client()
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def namespace(kube_server, request):
    """The test module's own namespace (its NAMESPACE), made once. No namespace controller runs here to
    empty one being deleted, so it stays until the server is stopped."""
    api_client = kube_server.api_client()
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": request.module.NAMESPACE}})
    yield request.module.NAMESPACE
    api_client.close()
