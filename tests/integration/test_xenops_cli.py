"""The ``xenops`` command as a subprocess against an in-process simulated host: a domain's
life (create, build, devices whose backends connect, pause, clean shutdown answered by the
simulated guest, destroy leaving nothing behind), listings, device removal, and the errors
(exit 1 with a message naming what failed, exit 2 for a bad command line)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from xen.hypervisor import NoSuchDomain, SimBackend
from xen.sim import SimHost
from xen.xenops._cli_env import CliError, UsageError, choose_target
from xen.xenops._dm import start_device_model
from xen.xenops._dmargs import DmInfo
from xen.xenops._host import SimHostActions
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

XVDA = 51712


class Cli:
    """A started SimHost, the command's environment, and our own clients to check with."""

    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "state"
        self.host = SimHost(self.state, memory_mib=2048).start()
        self.hv = SimBackend(self.host.hypervisor_path)
        self.xs = XenstoreClient(self.host.xenstore_path, timeout=2.0).connect()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("XENSTORED_PATH", "OXT_STATE_DIR")}

    def run(self, *args: str, state: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["--state", str(self.state)] if state else []
        return subprocess.run([sys.executable, "-m", "xen.xenops.cli", *prefix, *args],
                              capture_output=True, text=True, timeout=30, env=self.env)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def fails(self, status: int, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == status, (args, done.returncode, done.stdout, done.stderr)
        assert done.stderr.strip(), "an error must say why"
        return done.stderr

    def domain(self, *flags: str) -> int:
        domid = int(self.ok("create_domain", *flags))
        self.ok("build_domain", "-domid", str(domid))
        return domid

    def close(self) -> None:
        self.xs.close()
        self.hv.close()
        self.host.close()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path)
    try:
        yield c
    finally:
        c.close()


def state_of(cli: Cli, domid: int) -> str:
    line = next(line for line in cli.ok("list").splitlines()[1:]
                if line.split("|")[0].strip() == str(domid))
    return line.split("|")[1].strip()


def test_a_domain_from_create_to_destroy(cli: Cli) -> None:
    domid = int(cli.ok("create_domain", "-name", "vm1", "-memory", "65536"))
    assert cli.xs.read(f"/local/domain/{domid}/name") == "vm1"
    assert cli.hv.getinfo(domid).tot_kib == 65536
    assert cli.ok("build", "-domid", str(domid)) == f"built domain: {domid}\n"
    assert cli.xs.is_domain_introduced(domid)
    out = cli.ok("add_vbd", "-domid", str(domid), "-virtpath", "xvda", "-physpath",
                 "/images/vm1.img", "-phystype", "file")
    assert out == f"added vbd/{XVDA} (xvda) to domain {domid}\n"
    assert cli.xs.read(f"/local/domain/0/backend/vbd/{domid}/{XVDA}/loop-device").startswith(
        "/dev/loop")
    cli.ok("add_vif", "-domid", str(domid), "-mac", "00:16:3e:00:00:07", "-netty",
           "bridge:xenbr1")
    assert cli.xs.read(f"/local/domain/0/backend/vif/{domid}/0/bridge") == "xenbr1"
    assert cli.ok("unpause", "-domid", str(domid)) == f"unpaused domain: {domid}\n"
    wait_until(lambda: {("vbd", domid, XVDA), ("vif", domid, 0)}
               <= set(cli.host.backends_connected()), 5)
    devices = cli.ok("list_devices", "-domid", str(domid))
    assert f"vbd[{XVDA}] frontend Connected backend dom0 vbd/{XVDA}" in devices
    assert "vif[0] frontend Connected backend dom0 vif/0 Connected" in devices
    assert cli.ok("pause", "-domid", str(domid)) == f"paused domain: {domid}\n"
    assert state_of(cli, domid) == "P"
    cli.ok("unpause", "-domid", str(domid))
    out = cli.ok("shutdown", "-domid", str(domid), "-poweroff", "-sync")
    assert out == f"shutdown domain: {domid}\ndomain {domid} shut down (poweroff)\n"
    assert cli.hv.getinfo(domid).shutdown_code == 0
    assert cli.ok("destroy", "-domid", str(domid)) == f"destroyed domain: {domid}\n"
    with pytest.raises(NoSuchDomain):
        cli.hv.getinfo(domid)
    for path in (f"/local/domain/{domid}", f"/local/domain/0/backend/vbd/{domid}",
                 f"/local/domain/0/backend/vif/{domid}", f"/xapi/{domid}"):
        assert not cli.xs.exists(path), path


def test_list_physinfo_and_uuid(cli: Cli) -> None:
    domid = int(cli.ok("init", "-hvm", "-uuid", "12345678-1234-5678-1234-567812345678"))
    lines = cli.ok("list").splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["id", "state", "cpu_time", "uuid"]
    assert len({len(line) for line in lines}) == 1          # right-aligned columns
    assert state_of(cli, 0) == "R" and state_of(cli, domid) == "P  H"
    verbose = cli.ok("list_domains", "-v").splitlines()
    assert len(verbose[0].split("|")) == 11
    assert cli.ok("dom-uuid", "-domid", str(domid)) == "12345678-1234-5678-1234-567812345678\n"
    info = dict(line.split(" = ", 1) for line in cli.ok("physinfo").splitlines())
    assert info["nr_cpus"] == "4" and info["total_pages"] == "524288 (2048 MiB)"
    assert "hvm" in info["capabilities"].split()


def test_device_removal_clean_and_missing(cli: Cli) -> None:
    domid = cli.domain()
    d = str(domid)
    cli.ok("disk-add", "-domid", d, "-virtpath", "xvdb", "-physpath", "/dev/sdb", "-phystype",
           "phy", "-mode", "r")
    cli.ok("add_vif", "-domid", d, "-devid", "2", "-mac", "00:16:3e:00:00:08")
    cli.ok("unpause", "-domid", d)
    wait_until(lambda: ("vif", domid, 2) in cli.host.backends_connected(), 5)
    wait_until(lambda: ("vbd", domid, XVDA + 16) in cli.host.backends_connected(), 5)
    assert cli.ok("del_vbd", "-domid", d, "-virtpath", "xvdb") == \
        f"removed vbd/{XVDA + 16} (xvdb) from domain {domid}\n"
    assert not cli.xs.exists(f"/local/domain/0/backend/vbd/{domid}/{XVDA + 16}")
    assert cli.ok("del_vif", "-domid", d, "-devid", "2", "-hard") == \
        f"removed vif/2 from domain {domid}\n"
    assert not cli.xs.exists(f"/local/domain/{domid}/device/vif/2")
    assert "has no vif 2" in cli.fails(1, "del_vif", "-domid", d, "-devid", "2")
    cli.ok("destroy", "-domid", d)


def test_shutdown_not_acknowledged_and_hard_shutdown(cli: Cli) -> None:
    domid = cli.domain("-name", "stubborn")
    cli.host.set_behaviour("ignore-shutdown", True, name="stubborn")
    cli.ok("unpause", "-domid", str(domid))
    wait_until(lambda: cli.host.guest_status(domid) == "running", 5)
    err = cli.fails(1, "shutdown", "-domid", str(domid), "-reboot", "-timeout", "0.3")
    assert f"domain {domid} did not acknowledge reboot within 0.3 s" in err
    cli.ok("hard_shutdown_domain", "-domid", str(domid), "-crash")
    assert cli.hv.getinfo(domid).shutdown_code == 3
    assert "already shut down (code 3)" in cli.fails(1, "shutdown", "-domid", str(domid),
                                                     "-halt")
    cli.ok("del", "-domid", str(domid))


def test_halt_by_request_and_by_hypercall(cli: Cli) -> None:
    domid = cli.domain("-name", "halting")
    cli.ok("unpause", "-domid", str(domid))
    wait_until(lambda: cli.host.guest_status(domid) == "running", 5)
    # the guest is asked with the word "halt"; like Linux, the simulated guest then powers off
    out = cli.ok("shutdown", "-domid", str(domid), "-halt", "-sync")
    assert out == f"shutdown domain: {domid}\ndomain {domid} shut down (poweroff)\n"
    other = int(cli.ok("create_domain", "-name", "halted"))
    cli.ok("hard_shutdown_domain", "-domid", str(other), "-halt")
    assert cli.hv.getinfo(other).shutdown_code == 4
    for d in (domid, other):
        cli.ok("destroy", "-domid", str(d))


def test_destroy_stops_a_simulated_device_model(cli: Cli) -> None:
    domid = cli.domain()
    host = SimHostActions(xenstore_path=cli.host.xenstore_path)
    try:
        pid = start_device_model(host, cli.xs, domid, DmInfo(hvm=False, memory_mib=64,
                                                             display=None), timeout=10)
        cli.ok("destroy", "-domid", str(domid))
        child = host._children.pop(pid)
        assert child is not None and child[0].wait(5) == 0   # SIGTERM: a clean exit
    finally:
        host.close()


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert "refusing to destroy domain 0" in cli.fails(2, "destroy", "-domid", "0")
    assert "required: -domid" in cli.fails(2, "pause")
    assert "not a domain id" in cli.fails(2, "pause", "-domid", "x")
    assert "invalid choice: 'bogus'" in cli.fails(2, "bogus")
    assert "no command given" in cli.fails(2)
    domid = str(int(cli.ok("create_domain")))
    assert "not a virtual device name" in cli.fails(
        2, "add_vbd", "-domid", domid, "-virtpath", "foo", "-physpath", "/x", "-phystype", "phy")
    assert "one of the arguments -poweroff" in cli.fails(2, "shutdown", "-domid", domid)
    assert "not a valid network type" in cli.fails(2, "add_vif", "-domid", domid, "-netty", "x")
    assert "add_vbd" in cli.ok("help") and "-virtpath" in cli.ok("help", "del_vbd")


def test_failures_exit_1_with_one_line(cli: Cli, tmp_path: Path) -> None:
    assert "no domain 77" in cli.fails(1, "pause", "-domid", "77")
    assert "no such domain: 77" in cli.fails(1, "destroy", "-domid", "77")
    assert "not supported on the sim backend" in cli.fails(1, "getenforce")
    nowhere = cli.run("--state", str(tmp_path / "none"), "list", state=False)
    assert nowhere.returncode == 1 and "no hypervisor found" in nowhere.stderr
    gone = cli.run("--hypervisor-socket", str(tmp_path / "no.sock"), "list", state=False)
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    for done in (nowhere, gone):
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_command_from_the_program_name(cli: Cli, tmp_path: Path) -> None:
    script = shutil.which("xenops", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the xenops console script is not installed in this environment")
    link = tmp_path / "list_domains"
    link.symlink_to(script)
    done = subprocess.run([str(link), "--state", str(cli.state)], capture_output=True,
                          text=True, timeout=30, env=cli.env)
    assert done.returncode == 0 and done.stdout.startswith("id |"), done.stderr


def test_backend_choice(tmp_path: Path) -> None:
    (tmp_path / "simhost.json").write_text(
        '{"hypervisor_socket": "/s/hv", "xenstored_socket": "/s/xs"}')
    t = choose_target(None, str(tmp_path), None, None, environ={}, privcmd="/nonexistent")
    assert (t.backend, t.hypervisor_socket, t.xenstore_socket) == ("sim", "/s/hv", "/s/xs")
    t = choose_target(None, str(tmp_path), None, None, environ={"XENSTORED_PATH": "/e"})
    assert t.xenstore_socket == "/e"
    t = choose_target(None, None, None, None, environ={"OXT_STATE_DIR": str(tmp_path)})
    assert t.backend == "sim"
    t = choose_target(None, str(tmp_path / "x"), "/hv", None, environ={})
    assert (t.backend, t.hypervisor_socket, t.xenstore_socket) == ("sim", "/hv", None)
    privcmd = tmp_path / "privcmd"
    privcmd.touch()
    t = choose_target(None, str(tmp_path / "x"), None, None, environ={},
                      privcmd=str(privcmd))
    assert t.backend == "xc" and t.hypervisor_socket is None
    with pytest.raises(CliError, match="no hypervisor found"):
        choose_target(None, str(tmp_path / "x"), None, None, environ={}, privcmd="/no")
    with pytest.raises(CliError, match="needs the simulated hypervisor's socket"):
        choose_target("sim", str(tmp_path / "x"), None, None, environ={})
    with pytest.raises(UsageError):
        choose_target("kvm", None, None, None, environ={})


def test_the_command_imports_no_actor_runtime() -> None:
    """The package roots are lazy: the command never loads pykka or the actor runtime."""
    code = ("import sys, xen.xenops.cli as c, xen.xenops._cli_env as e; "
            "e.Session; import xen.hypervisor, xen.xenstore._client; "
            "print(sorted(m for m in sys.modules if m == 'pykka' or m == 'actors._actor'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == "[]", done.stdout


def test_pci_add_del_and_bind(cli: Cli) -> None:
    domid = cli.domain()
    usb, nic = "0000:00:14.0", "0000:04:00.0"
    err = cli.fails(1, "add_pci", "-domid", str(domid), "-pci", "0000:07:00.0")
    assert "no PCI device 0000:07:00.0 on this host" in err
    assert cli.fails(2, "add_pci", "-domid", str(domid), "-pci", "00:14.0")  # not a BDF
    out = cli.ok("add_pci", "-domid", str(domid), "-pci", f"{usb},{nic}", "-devid", "1",
                 "-bind")
    assert out.strip() == f"added pci/1 ({usb},{nic}) to domain {domid}"
    bus = cli.hv.pci_state()
    assert bus["devices"][usb]["assigned"] == domid and bus["devices"][nic]["assigned"] == domid
    assert cli.xs.read(f"/local/domain/0/backend/pci/{domid}/1/num_devs") == "2"
    assert "pci[1]" in cli.ok("list_devices", "-domid", str(domid))
    out = cli.ok("del_pci", "-domid", str(domid), "-devid", "1")
    assert out.strip() == f"removed pci/1 ({usb},{nic}) from domain {domid}"
    bus = cli.hv.pci_state()
    assert bus["devices"][usb]["assigned"] is None and bus["grants"] == {}
    assert "no pci group 1" in cli.fails(1, "del_pci", "-domid", str(domid), "-devid", "1")
    assert cli.ok("pci-bind", "-pci", "0000:00:1f.3").strip() == "0000:00:1f.3 bound to pciback"
    assert cli.hv.pci_state()["devices"]["0000:00:1f.3"]["driver"] == "pciback"
