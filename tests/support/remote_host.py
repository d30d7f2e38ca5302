"""A remote KVM host made by the test run: the project's own libvirtd, reached only over SSH.

A second embedded libvirtd (components/host/embedded.py) runs in its own network and mount
namespaces. An OpenSSH sshd runs inside both of them, so `qemu+ssh://root@<it>/system` lands on
that libvirtd through the standard socket path, as on a real remote host, and the guests on its
NAT networks can be reached only through that sshd.

The runner (the Pulumi engine and its providers) runs in a network namespace of its own, joined
to the host's by a veth pair: nothing is added to this machine's own network. Its ~/.ssh is a
directory of the test's holding the key that logs in to the host and a known_hosts that pins the
host's key: in a private mount namespace, a copy of /etc/passwd gives the runner a home of the
test's (ssh and components.guest.jump find ~/.ssh from passwd, not $HOME). So the real ~/.ssh is
never touched, need not exist, and nothing is trusted on first use.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from components.guest.jump import JumpHost
from components.guest.keys import generate_ed25519
from components.guest.netns import connect_tcp
from components.host import embedded

REPO = Path(__file__).resolve().parents[2]
RUNNER_ADDRESS, HOST_ADDRESS = "10.251.0.1", "10.251.0.2"   # inside the two namespaces only
_SSHD_UP_S = 30


@dataclasses.dataclass
class RemoteHost:
    libvirtd: embedded.EmbeddedHost
    runner_netns: str            # /run/netns/...: where the runner's connections start
    ssh_dir: Path                # the runner's ~/.ssh while it runs (<its home>/.ssh): id_ed25519, known_hosts
    workdir: Path
    sshd_binary: str
    sshd: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return HOST_ADDRESS

    @property
    def uri(self) -> str:
        return f"qemu+ssh://root@{HOST_ADDRESS}/system?no_tty=1"

    @property
    def local_uri(self) -> str:
        """Its libvirtd's own socket, for the test to count what is on it (the runner never uses it)."""
        return self.libvirtd.uri

    def jump(self) -> JumpHost:
        """Its sshd as the test reaches it: from the runner's namespace, with the runner's key and known_hosts."""
        return JumpHost(HOST_ADDRESS, 22, "root", known_hosts=(str(self.ssh_dir / "known_hosts"),),
                        identities=(str(self.ssh_dir / "id_ed25519"),), netns=self.runner_netns)

    def as_runner(self, env: dict) -> dict:
        """`env` with PATH leading to a `pulumi` that runs as the runner: in its netns, with its ~/.ssh."""
        bin_dir = self.workdir / "bin"
        bin_dir.mkdir(exist_ok=True)
        real = shutil.which("pulumi", path=env.get("PATH") or os.environ["PATH"])
        (bin_dir / "pulumi").write_text(f"#!/bin/sh\nexec {shlex.quote(str(bin_dir / 'as-runner'))} "
                                        f"{shlex.quote(real)} \"$@\"\n")
        passwd = self.workdir / "runner-passwd"
        passwd.write_text(_with_home(_passwd(), os.getuid(), str(self.ssh_dir.parent)))
        (bin_dir / "as-runner").write_text(
            "#!/bin/sh\n"
            f"exec unshare -m --propagation slave nsenter --net={shlex.quote(self.runner_netns)} /bin/sh -c "
            "'mount --bind \"$1\" /etc/passwd && shift && exec \"$@\"' sh "
            f"{shlex.quote(str(passwd))} \"$@\"\n")
        for script in ("pulumi", "as-runner"):
            (bin_dir / script).chmod(0o755)
        return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH') or os.environ['PATH']}"}

    def start_sshd(self) -> None:
        """sshd inside the libvirtd's network and mount namespaces (with a passwd that has its privsep user)."""
        pid = embedded.daemon_pid(self.libvirtd)
        assert pid, "the remote host's libvirtd is not running"
        lib = Path(self.sshd_binary).parents[2] / "usr" / "lib" / "x86_64-linux-gnu"
        inner = (f"mount --bind {shlex.quote(str(self.workdir / 'passwd'))} /etc/passwd && "
                 f"exec env LD_LIBRARY_PATH={shlex.quote(str(lib))} {shlex.quote(self.sshd_binary)} -D -e "
                 f"-f {shlex.quote(str(self.workdir / 'sshd_config'))}")
        log = open(self.workdir / "sshd.log", "ab")
        self.sshd = subprocess.Popen(["nsenter", "-t", str(pid), "-m", "-n", "unshare", "-m", "--propagation",
                                      "private", "/bin/sh", "-c", inner], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, start_new_session=True)
        deadline = time.monotonic() + _SSHD_UP_S
        while True:
            try:
                connect_tcp(HOST_ADDRESS, 22, netns=self.runner_netns, timeout_s=2).close()
                return
            except OSError:
                if self.sshd.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd of the remote host did not start: "
                                       f"{(self.workdir / 'sshd.log').read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)

    def stop_sshd(self) -> None:
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            self.sshd.wait(timeout=10)
        self.sshd = None


def _passwd() -> str:
    return subprocess.run(["getent", "passwd"], capture_output=True, text=True, check=True).stdout


def _with_home(passwd: str, uid: int, home: str) -> str:
    """passwd with `uid`'s home directory replaced."""
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[2] == str(uid):
            fields[5] = home
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def start(root: Path, name: str = "far") -> RemoteHost:
    """The remote host, its sshd and the runner's namespace; stop() undoes it all."""
    sshd_binary = subprocess.run([str(REPO / "tools" / "test-sshd.sh")], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1]
    libvirtd = embedded.ensure_running(embedded.embedded_host(name, state_root=root / "host"))
    workdir = root / "remote"
    ssh_dir = workdir / "runner-home" / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    runner = f"/run/netns/vdesk-runner-{os.path.basename(libvirtd.netns).rsplit('-', 1)[-1]}"
    remote = RemoteHost(libvirtd, runner, ssh_dir, workdir, sshd_binary)
    _ip("netns", "add", os.path.basename(runner))
    _ip("-n", os.path.basename(runner), "link", "set", "lo", "up")
    _ip("link", "add", "vdesk-run0", "netns", os.path.basename(runner), "type", "veth", "peer", "name",
        "vdesk-ssh0", "netns", os.path.basename(libvirtd.netns))
    _ip("-n", os.path.basename(runner), "addr", "add", f"{RUNNER_ADDRESS}/30", "dev", "vdesk-run0")
    _ip("-n", os.path.basename(libvirtd.netns), "addr", "add", f"{HOST_ADDRESS}/30", "dev", "vdesk-ssh0")
    _ip("-n", os.path.basename(runner), "link", "set", "vdesk-run0", "up")
    _ip("-n", os.path.basename(libvirtd.netns), "link", "set", "vdesk-ssh0", "up")

    host_key, login = generate_ed25519("remote host"), generate_ed25519("runner")
    (workdir / "host_key").write_text(host_key.private_openssh)
    (workdir / "host_key").chmod(0o600)
    (workdir / "authorized_keys").write_text(login.public_openssh + "\n")
    (ssh_dir / "id_ed25519").write_text(login.private_openssh)
    (ssh_dir / "id_ed25519").chmod(0o600)
    (ssh_dir / "known_hosts").write_text(f"{HOST_ADDRESS} {host_key.public_openssh}\n")
    users = _passwd()
    if not any(line.startswith("sshd:") for line in users.splitlines()):
        users += "sshd:x:64999:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin\n"
    (workdir / "passwd").write_text(users)
    (workdir / "sshd_config").write_text("\n".join([
        f"ListenAddress {HOST_ADDRESS}", "Port 22", f"HostKey {workdir / 'host_key'}",
        f"PidFile {workdir / 'sshd.pid'}", f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", "AllowTcpForwarding yes", "LogLevel VERBOSE", ""]))
    privsep = libvirtd.state_dir / "run" / "sshd"     # /run/sshd inside the host's mount namespace
    privsep.mkdir(mode=0o755, exist_ok=True)
    remote.start_sshd()
    return remote


def stop(remote: RemoteHost) -> None:
    remote.stop_sshd()
    if os.path.exists(remote.runner_netns):
        _ip("netns", "delete", os.path.basename(remote.runner_netns))
    embedded.stop(remote.libvirtd, purge=True)
