"""`SimBackend`: the `xen.hypervisor.Hypervisor` interface over the simulated hypervisor's socket.

A blocking client of `xen.hypervisor.wire` on one unix socket connection, opened at the first
request and re-opened after a failure. Thread-safe: requests from several threads are sent one
at a time (a lock held for the request and its reply).

Every request is bounded by ``timeout`` seconds, waiting for the lock included. Failures:
- the server's error replies are raised as the `xen.hypervisor` class they name (NoSuchDomain,
  OutOfMemory, InvalidArgument, ...), with the server's message and errno; the connection stays;
- no socket file, nobody listening, the connection lost mid-request or a reply that breaks the
  protocol raise `Unavailable` naming the socket (then whether the request took effect is
  unknown); no reply within the timeout raises `HypervisorTimeout`. In these cases the
  connection is dropped, and the next request connects again. Nothing is retried: an operation
  is never applied twice by this client.
- after `close`, every request raises `Unavailable`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from actors import shielded
from xen.hypervisor._errors import (
    ERRORS,
    HypervisorError,
    HypervisorTimeout,
    InvalidArgument,
    Unavailable,
)
from xen.hypervisor._pci import (
    MAX_PIRQ,
    check_allow,
    check_iomem,
    check_ioport,
    check_pirq,
    parse_bdf,
)
from xen.hypervisor._values import (
    MAX_SHADOW_MIB,
    DomainInfo,
    DomainSpec,
    HvmParam,
    PhysInfo,
    ShutdownReason,
    Version,
    check_domid,
    check_hvm_param,
    check_range,
)
from xen.hypervisor.wire import (
    MAX_FRAME,
    MAX_INFOLIST,
    BadPayload,
    ErrorReply,
    HvClientProtocol,
    ProtocolError,
    decode_dataclass,
    encode_value,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["SimBackend"]

T = TypeVar("T")
_RECV_SIZE = 65536
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


class SimBackend:
    """The simulated hypervisor at ``socket_path``; see the module docstring."""

    name = "sim"

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        max_frame: int = MAX_FRAME,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        self._path = os.fspath(socket_path)
        self._timeout = timeout
        self._max_frame = max_frame
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proto = HvClientProtocol(max_frame)
        self._closed = False
        self.calls = 0  # requests sent (the benchmarks count a VM start's round trips)

    @property
    def socket_path(self) -> str:
        return self._path

    # --- host ----------------------------------------------------------------------------------

    def version(self) -> Version:
        return self._decode(Version, self._call("version"), "version")

    def physinfo(self) -> PhysInfo:
        return self._decode(PhysInfo, self._call("physinfo"), "physinfo")

    # --- domains -------------------------------------------------------------------------------

    def create(self, spec: DomainSpec) -> int:
        domid = self._call("create", spec=encode_value(spec))
        if isinstance(domid, bool) or not isinstance(domid, int):
            raise HypervisorError(f"the simulated hypervisor answered create with {domid!r:.40}")
        return domid

    def pause(self, domid: int) -> None:
        check_domid(domid)
        self._call("pause", domid=domid)

    def unpause(self, domid: int) -> None:
        check_domid(domid)
        self._call("unpause", domid=domid)

    def shutdown(self, domid: int, reason: ShutdownReason) -> None:
        check_domid(domid)
        self._call("shutdown", domid=domid, reason=int(reason))

    def destroy(self, domid: int) -> None:
        check_domid(domid)
        self._call("destroy", domid=domid)

    def getinfolist(self, first: int = 0, max_domains: int = 1024) -> list[DomainInfo]:
        for name, value in (("first", first), ("max_domains", max_domains)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"getinfolist: {name} must be an integer >= 0, got {value!r}")
        out: list[DomainInfo] = []
        while len(out) < max_domains:
            want = min(max_domains - len(out), MAX_INFOLIST)
            batch = self._decode_list(
                self._call("getinfolist", first=first, max_domains=want), "getinfolist")
            out += batch
            if len(batch) < want:
                break
            first = batch[-1].domid + 1
        return out

    def getinfo(self, domid: int) -> DomainInfo:
        check_domid(domid)
        return self._decode(DomainInfo, self._call("getinfo", domid=domid), "getinfo")

    def setmaxmem(self, domid: int, kib: int) -> None:
        check_domid(domid)
        self._call("setmaxmem", domid=domid, kib=kib)

    def set_handle(self, domid: int, handle: uuid.UUID) -> None:
        check_domid(domid)
        if not isinstance(handle, uuid.UUID):
            raise InvalidArgument(f"set_handle: {handle!r} is not a uuid.UUID")
        self._call("set_handle", domid=domid, handle=handle.bytes)

    def set_target(self, domid: int, target: int) -> None:
        check_domid(domid)
        check_domid(target)
        self._call("set_target", domid=domid, target=target)

    def find_by_handle(self, handle: uuid.UUID) -> list[DomainInfo]:
        if not isinstance(handle, uuid.UUID):
            raise InvalidArgument(f"find_by_handle: {handle!r} is not a uuid.UUID")
        return self._decode_list(self._call("find_by_handle", handle=handle.bytes),
                                 "find_by_handle")

    # --- domain build --------------------------------------------------------------------------

    def max_vcpus(self, domid: int, vcpus: int) -> None:
        check_domid(domid)
        check_range(f"max_vcpus of domain {domid}", "vcpu count", vcpus, 1, _U32_MAX)
        self._call("max_vcpus", domid=domid, vcpus=vcpus)

    def shadow_allocation(self, domid: int, mib: int) -> int:
        check_domid(domid)
        what = f"shadow_allocation of domain {domid}"
        check_range(what, "size in MiB", mib, 0, MAX_SHADOW_MIB)
        return self._int_reply(self._call("shadow_allocation", domid=domid, mib=mib), what,
                               _U32_MAX)

    def set_hvm_param(self, domid: int, param: HvmParam, value: int) -> None:
        check_domid(domid)
        what = f"set_hvm_param of domain {domid}"
        index = check_hvm_param(what, param)
        check_range(f"{what}, {index.name}", "value", value, 0, _U64_MAX)
        self._call("set_hvm_param", domid=domid, param=int(index), value=value)

    def get_hvm_param(self, domid: int, param: HvmParam) -> int:
        check_domid(domid)
        what = f"get_hvm_param of domain {domid}"
        index = check_hvm_param(what, param)
        return self._int_reply(self._call("get_hvm_param", domid=domid, param=int(index)),
                               what, _U64_MAX)

    # --- PCI passthrough -----------------------------------------------------------------------

    def test_assign_device(self, domid: int, bdf: str) -> bool:
        address = parse_bdf("test_assign_device", domid, bdf)
        return self._call("test_assign_device", domid=domid, bdf=str(address)) is True

    def assign_device(self, domid: int, bdf: str) -> None:
        self._call("assign_device", domid=domid, bdf=str(parse_bdf("assign_device", domid, bdf)))

    def deassign_device(self, domid: int, bdf: str) -> None:
        address = parse_bdf("deassign_device", domid, bdf)
        self._call("deassign_device", domid=domid, bdf=str(address))

    def iomem_permission(self, domid: int, first_mfn: int, nr_mfns: int,
                         allow: bool) -> None:
        check_iomem("iomem_permission", domid, first_mfn, nr_mfns)
        self._call("iomem_permission", domid=domid, first_mfn=first_mfn, nr_mfns=nr_mfns,
                   allow=check_allow("iomem_permission", domid, allow))

    def ioport_permission(self, domid: int, first_port: int, nr_ports: int,
                          allow: bool) -> None:
        check_ioport("ioport_permission", domid, first_port, nr_ports)
        self._call("ioport_permission", domid=domid, first_port=first_port, nr_ports=nr_ports,
                   allow=check_allow("ioport_permission", domid, allow))

    def irq_permission(self, domid: int, pirq: int, allow: bool) -> None:
        check_pirq("irq_permission", domid, "pirq", pirq)
        self._call("irq_permission", domid=domid, pirq=pirq,
                   allow=check_allow("irq_permission", domid, allow))

    def map_pirq(self, domid: int, gsi: int, pirq: int | None = None) -> int:
        check_pirq("map_pirq", domid, "gsi", gsi)
        if pirq is not None:
            check_pirq("map_pirq", domid, "pirq", pirq)
        return self._int_reply(self._call("map_pirq", domid=domid, gsi=gsi, pirq=pirq),
                               f"map_pirq of domain {domid}", MAX_PIRQ)

    def unmap_pirq(self, domid: int, pirq: int) -> None:
        check_pirq("unmap_pirq", domid, "pirq", pirq)
        self._call("unmap_pirq", domid=domid, pirq=pirq)

    # --- sim only: the simulated host's dom0 sysfs and PCI bus (not in `Hypervisor`) ------------

    def sysfs_read(self, path: str) -> str:
        """The text of ``/sys/bus/pci/<path>`` on the simulated host (`HypervisorError` with
        the errno a real sysfs read would fail with)."""
        value = self._call("sysfs_read", path=path)
        if not isinstance(value, str):
            raise HypervisorError(f"sysfs_read {path}: the simulated host answered {value!r:.40}")
        return value

    def sysfs_write(self, path: str, value: str) -> None:
        """Write ``value`` to ``/sys/bus/pci/<path>`` on the simulated host."""
        self._call("sysfs_write", path=path, value=value)

    def pci_state(self) -> dict[str, Any]:
        """The simulated PCI bus as plain data (`xen.sim.hypervisor.SimPciBus.state`)."""
        value = self._call("pci_state")
        if not isinstance(value, dict):
            raise HypervisorError(f"pci_state: the simulated host answered {value!r:.40}")
        return value

    def scsi_devices(self) -> list[dict[str, Any]]:
        """The simulated host's SCSI disks and CD drives (`xen.sim.hypervisor._scsi`)."""
        value = self._call("scsi_devices")
        if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
            raise HypervisorError(f"scsi_devices: the simulated host answered {value!r:.40}")
        return value

    def scsi_eject(self, hctl: str) -> None:
        """Eject the medium of the simulated host's CD drive ``hctl``."""
        self._call("scsi_eject", hctl=hctl)

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later requests raise `Unavailable`. A request in flight in
        another thread fails with `Unavailable`."""
        self._closed = True
        if self._lock.acquire(timeout=self._timeout):
            try:
                self._disconnect()
            finally:
                self._lock.release()
        else:
            sock = self._sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the request in flight

    def __enter__(self) -> SimBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _decode(self, cls: type[T], value: Any, op: str) -> T:
        try:
            return decode_dataclass(cls, value)
        except BadPayload as exc:
            raise HypervisorError(
                f"the simulated hypervisor at {self._path} sent a malformed {op} reply: {exc}"
            ) from None

    def _int_reply(self, value: Any, what: str, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise HypervisorError(
                f"{what}: the simulated hypervisor at {self._path} answered {value!r:.40}")
        return value

    def _decode_list(self, value: Any, op: str) -> list[DomainInfo]:
        if not isinstance(value, list):
            raise HypervisorError(
                f"the simulated hypervisor at {self._path} answered {op} with {value!r:.40}")
        return [self._decode(DomainInfo, item, op) for item in value]

    @shielded  # an actor kill would leave the lock taken
    def _call(self, op: str, **args: Any) -> Any:
        deadline = time.monotonic() + self._timeout
        if not self._lock.acquire(timeout=self._timeout):
            raise HypervisorTimeout(
                f"{op}: another request to the simulated hypervisor at {self._path} held the "
                f"connection for over {self._timeout} s")
        try:
            if self._closed:
                raise Unavailable(f"{op}: the connection to {self._path} was closed")
            sock = self._sock if self._sock is not None else self._connect(deadline)
            req = self._proto.request(op, **args)
            self.calls += 1
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.sendall(self._proto.send(req))
                while True:
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
                    data = sock.recv(_RECV_SIZE)
                    if not data:
                        raise ConnectionResetError("the server closed the connection")
                    for reply in self._proto.feed(data):
                        if isinstance(reply, ErrorReply):
                            cls = ERRORS.get(reply.name, HypervisorError)
                            raise cls(reply.message, errno=reply.errno)
                        return reply.value
            except TimeoutError:
                self._disconnect()
                raise HypervisorTimeout(
                    f"{op}: no answer from the simulated hypervisor at {self._path} within "
                    f"{self._timeout} s (the connection was dropped; whether {op} took effect "
                    f"is unknown)") from None
            except (OSError, ProtocolError) as exc:
                self._disconnect()
                raise Unavailable(
                    f"{op}: the simulated hypervisor at {self._path} went away or broke the "
                    f"protocol ({exc}); whether {op} took effect is unknown") from None
        finally:
            self._lock.release()

    def _connect(self, deadline: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect(self._path)
        except FileNotFoundError:
            sock.close()
            raise Unavailable(
                f"the simulated hypervisor socket {self._path} does not exist "
                f"(is the simulated host running?)") from None
        except ConnectionRefusedError:
            sock.close()
            raise Unavailable(
                f"nobody listens on {self._path} (a stale socket: the simulated host is not "
                f"running)") from None
        except OSError as exc:
            sock.close()
            raise Unavailable(f"cannot connect to the simulated hypervisor at {self._path}: "
                              f"{exc}") from None
        self._sock = sock
        self._proto = HvClientProtocol(self._max_frame)
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
