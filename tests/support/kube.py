"""A real Kubernetes API server on loopback (etcd + kube-apiserver, built by tools/build-kube.sh) with
KubeVirt's and CDI's CRDs installed: the test tier for the kubevirt backend. No controllers run, so
nothing acts on the objects; a test that needs a controller's effect writes it and says so."""
from __future__ import annotations

import datetime
import ipaddress
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "build-kube.sh"
CRD_FILES = (Path(__file__).parent / "crds" / "kubevirt.yaml", Path(__file__).parent / "crds" / "cdi.yaml")
ADMIN_USER = "vdesk-test-admin"
# Bootstrap RBAC binds this group to cluster-admin; the admin reaches the server by a static token.
ADMIN_GROUP = "system:masters"
# The first start creates the bootstrap RBAC policy and priority levels: slow on a busy 2-core machine.
READY_DEADLINE_S = 180.0
ESTABLISHED_DEADLINE_S = 60.0
BUILD_TIMEOUT_S = 3600
POLL_S = 0.2
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # the CRDs are 1.2 MB of YAML


class KubeServerError(RuntimeError):
    """The test API server could not be built, started or made ready."""


@dataclass
class KubeServer:
    """One running etcd + kube-apiserver pair and how to reach it as the admin."""
    root: Path
    url: str
    token: str
    ca_file: Path
    kubeconfig: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def api_client(self):
        """A kubernetes.client.ApiClient for the admin, from the written kubeconfig."""
        from kubernetes import config
        return config.new_client_from_config(config_file=str(self.kubeconfig))


def bin_dir() -> Path:
    """The directory with kube-apiserver and etcd, built (once, cached) if missing."""
    try:
        done = subprocess.run([str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise KubeServerError(f"{BUILD_SCRIPT} took longer than {BUILD_TIMEOUT_S} s") from err
    if done.returncode != 0:
        raise KubeServerError(f"{BUILD_SCRIPT} failed with exit code {done.returncode} (its stderr is above)")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificates(pki: Path) -> dict[str, Path]:
    """A throwaway CA, the server's loopback certificate signed by it, and the service-account key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vdesk-test-ca")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(valid[0]).not_valid_after(valid[1])
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
                   .issuer_name(ca_name).public_key(server_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(valid[0]).not_valid_after(valid[1])
                   .add_extension(x509.SubjectAlternativeName([
                       x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
                   .sign(ca_key, hashes.SHA256()))
    service_account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "ca": _write_pem(pki / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM)),
        "server_cert": _write_pem(pki / "server.crt", server_cert.public_bytes(serialization.Encoding.PEM)),
        "server_key": _write_pem(pki / "server.key", _key_pem(server_key)),
        "service_account_key": _write_pem(pki / "sa.key", _key_pem(service_account_key)),
    }


def _kubeconfig(path: Path, url: str, ca_file: Path, token: str) -> Path:
    document = {
        "apiVersion": "v1", "kind": "Config", "current-context": "vdesk-test",
        "clusters": [{"name": "vdesk-test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "vdesk-test", "context": {"cluster": "vdesk-test", "user": ADMIN_USER}}],
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(server: KubeServer, apiserver: subprocess.Popen, log_file: Path) -> None:
    """Until /readyz answers ok, the process dies, or the deadline passes."""
    import ssl
    import urllib.error
    import urllib.request
    context = ssl.create_default_context(cafile=str(server.ca_file))
    request = urllib.request.Request(f"{server.url}/readyz", headers={"Authorization": f"Bearer {server.token}"})
    deadline = time.monotonic() + READY_DEADLINE_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if apiserver.poll() is not None:
            raise KubeServerError(f"kube-apiserver exited with {apiserver.returncode}:\n{_log_tail(log_file)}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}: {err.read()[-300:].decode(errors='replace')}"
        except OSError as err:
            last = str(err)
        time.sleep(POLL_S)
    raise KubeServerError(f"kube-apiserver not ready within {READY_DEADLINE_S:.0f} s ({last}):\n{_log_tail(log_file)}")


def install_crds(server: KubeServer, files=CRD_FILES) -> list[str]:
    """Create every CRD in `files` and wait until each is Established; returns their names."""
    from kubernetes import client
    api = client.ApiextensionsV1Api(server.api_client())
    names = []
    for path in files:
        for document in yaml.load_all(path.read_text(), Loader=_YAML_LOADER):
            if document:
                api.create_custom_resource_definition(document)
                names.append(document["metadata"]["name"])
    deadline = time.monotonic() + ESTABLISHED_DEADLINE_S
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            conditions = api.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                pending.discard(name)
        if pending:
            time.sleep(POLL_S)
    if pending:
        raise KubeServerError(f"CRDs not Established within {ESTABLISHED_DEADLINE_S:.0f} s: {sorted(pending)}")
    return names


def start(root: Path | None = None) -> KubeServer:
    """Start etcd and kube-apiserver under `root` (a fresh temporary directory by default), ready."""
    binaries = bin_dir()
    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="vdesk-kube-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "pki").mkdir(mode=0o700)
    pki = _certificates(root / "pki")
    token = secrets.token_urlsafe(32)
    tokens = _write_pem(root / "pki" / "tokens.csv", f'{token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n'.encode())
    etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    url = f"https://127.0.0.1:{api_port}"
    server = KubeServer(root=root, url=url, token=token, ca_file=pki["ca"],
                        kubeconfig=_kubeconfig(root / "kubeconfig", url, pki["ca"], token))
    try:
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        with open(root / "etcd.log", "wb") as etcd_log:
            server.processes.append(subprocess.Popen(
                [str(binaries / "etcd"), "--name", "vdesk-test", "--data-dir", str(root / "etcd"),
                 "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                 "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-cluster", f"vdesk-test=http://127.0.0.1:{peer_port}",
                 "--unsafe-no-fsync", "--log-level", "warn"],
                stdout=etcd_log, stderr=subprocess.STDOUT, start_new_session=True))
        with open(root / "kube-apiserver.log", "wb") as api_log:
            apiserver = subprocess.Popen(
                [str(binaries / "kube-apiserver"), "--etcd-servers", etcd_url,
                 "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                 "--secure-port", str(api_port), "--cert-dir", str(root / "pki"),
                 "--tls-cert-file", str(pki["server_cert"]), "--tls-private-key-file", str(pki["server_key"]),
                 "--client-ca-file", str(pki["ca"]), "--token-auth-file", str(tokens),
                 "--authorization-mode", "RBAC",
                 "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                 "--service-account-key-file", str(pki["service_account_key"]),
                 "--service-account-signing-key-file", str(pki["service_account_key"]),
                 "--service-cluster-ip-range", "10.96.0.0/24", "--profiling=false"],
                stdout=api_log, stderr=subprocess.STDOUT, start_new_session=True)
        server.processes.append(apiserver)
        _wait_ready(server, apiserver, root / "kube-apiserver.log")
    except BaseException:
        stop(server)
        raise
    log.info("test API server ready at %s (%s)", url, root)
    return server


def stop(server: KubeServer) -> None:
    """Stop kube-apiserver, then etcd, and remove everything they wrote."""
    for process in reversed(server.processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    server.processes.clear()
    shutil.rmtree(server.root, ignore_errors=True)
