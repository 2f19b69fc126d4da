"""`--delay` without netem: a userspace delay line on a netfilter queue.

The lab's rules (see `shaping.delay_rules`) send every packet that crosses a delayed
access link to one NFQUEUE in that host's namespace; this process, running in the
same namespace, holds each packet `--delay-ms` milliseconds and then lets it go on.

It speaks nfnetlink_queue over a netlink socket itself, so it needs nothing beyond
Python: the kernel copies only the packet's metadata (never its payload) and hands
over GSO packets whole, so a bulk transfer costs one message per 64 KB super-packet.
Every packet waits the same time, so packets leave in the order they came and one
batch verdict ("accept every id up to N") lets out all that are due at once.

Fail-closed: the rules have no `--queue-bypass`, so while this process is not bound
the kernel drops what they queue, and a delayed link never silently carries undelayed
traffic. A full queue (`--maxlen`) also drops, as netem's `limit` does.

    python -m peerline.lab.delayline --queue 25000 --delay-ms 50
"""

import argparse
import collections
import errno
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from peerline.errors import PeerlineError, UsageError

#: The netlink family of netfilter (linux/netlink.h); Python's socket module lacks it.
NETLINK_NETFILTER = 12
#: Lets root set a receive buffer beyond net.core.rmem_max (asm-generic/socket.h).
SO_RCVBUFFORCE = 33
#: nfnetlink subsystem of the queue (linux/netfilter/nfnetlink.h), and its version.
NFNL_SUBSYS_QUEUE = 3
NFNETLINK_V0 = 0
#: Netfilter verdict (linux/netfilter.h).
NF_ACCEPT = 1

#: The line printed (then stdout is closed) once the queue is bound and configured.
READY_LINE = "delay line ready"
#: How many packets the kernel may hold for us before it drops (as netem's limit).
DEFAULT_MAXLEN = 100_000
#: Our socket's receive buffer: room for tens of thousands of packet messages.
RECEIVE_BUFFER = 32 * 1024 * 1024
#: Datagrams read per wake-up at most, so a flood cannot postpone releases.
READ_BATCH = 512

_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_NFGEN_HEADER = struct.Struct("!BBH")  # family, version, resource id (the queue)
_ATTRIBUTE_HEADER = struct.Struct("=HH")  # length, type
_HEADERS = _NLMSG_HEADER.size + _NFGEN_HEADER.size
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLMSG_ERROR = 0x2
_NLA_TYPE_MASK = 0x3FFF  # without the nested / network-byte-order flags


class QueueMessage(IntEnum):
    """nfnetlink_queue message types (enum nfqnl_msg_types)."""

    PACKET = 0
    VERDICT = 1
    CONFIG = 2
    VERDICT_BATCH = 3

    @property
    def netlink_type(self) -> int:
        return NFNL_SUBSYS_QUEUE << 8 | self


class ConfigAttribute(IntEnum):
    """Attributes of a CONFIG message (enum nfqnl_attr_config)."""

    CMD = 1
    PARAMS = 2
    QUEUE_MAXLEN = 3
    MASK = 4
    FLAGS = 5


class ConfigCommand(IntEnum):
    """enum nfqnl_msg_config_cmds."""

    BIND = 1
    UNBIND = 2


class CopyMode(IntEnum):
    """enum nfqnl_config_mode."""

    NONE = 0
    META = 1
    PACKET = 2


class QueueFlag(IntEnum):
    """NFQA_CFG_F_* bits."""

    FAIL_OPEN = 1 << 0
    GSO = 1 << 2


class PacketAttribute(IntEnum):
    """Attributes of a PACKET or VERDICT message (enum nfqnl_attr_type), those we use."""

    PACKET_HDR = 1
    VERDICT_HDR = 2


class DelayLineError(PeerlineError):
    """The queue could not be bound or read; the message says why."""


@dataclass(frozen=True, slots=True)
class DelayLineConfig:
    """One delay line: which queue, how long each packet waits, how many may wait."""

    queue: int
    delay_s: float
    maxlen: int = DEFAULT_MAXLEN

    def __post_init__(self) -> None:
        if not 0 <= self.queue <= 0xFFFF:
            raise UsageError(f"queue must be 0-65535, not {self.queue}")
        if not 0 < self.delay_s <= 60.0:
            raise UsageError(
                f"delay must be above 0 and at most 60000 ms, not {self.delay_s * 1000:g} ms"
            )
        if not 1 <= self.maxlen <= 10_000_000:
            raise UsageError(f"maxlen must be 1-10000000, not {self.maxlen}")


# The wire format: pure functions, unit-tested without a kernel.


def _attribute(kind: int, payload: bytes) -> bytes:
    length = _ATTRIBUTE_HEADER.size + len(payload)
    return _ATTRIBUTE_HEADER.pack(length, kind) + payload + bytes(-length % 4)


def _message(kind: QueueMessage, queue: int, sequence: int, flags: int, body: bytes) -> bytes:
    length = _HEADERS + len(body)
    return (
        _NLMSG_HEADER.pack(length, kind.netlink_type, _NLM_F_REQUEST | flags, sequence, 0)
        + _NFGEN_HEADER.pack(socket.AF_UNSPEC, NFNETLINK_V0, queue)
        + body
    )


def bind_message(config: DelayLineConfig, sequence: int) -> bytes:
    """Bind `config.queue` to this socket: metadata only, whole GSO packets, its maxlen;
    acknowledged, so a refusal (queue taken, no permission) comes back as an error."""
    flags = struct.pack("!I", QueueFlag.GSO)
    body = (
        _attribute(ConfigAttribute.CMD, struct.pack("!BxH", ConfigCommand.BIND, socket.AF_INET))
        + _attribute(ConfigAttribute.PARAMS, struct.pack("!IB", 0, CopyMode.META))
        + _attribute(ConfigAttribute.QUEUE_MAXLEN, struct.pack("!I", config.maxlen))
        + _attribute(ConfigAttribute.MASK, flags)
        + _attribute(ConfigAttribute.FLAGS, flags)
    )
    return _message(QueueMessage.CONFIG, config.queue, sequence, _NLM_F_ACK, body)


def accept_through_message(queue: int, packet_id: int, sequence: int) -> bytes:
    """Accept every packet of `queue` whose id is `packet_id` or older."""
    verdict = _attribute(PacketAttribute.VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
    return _message(QueueMessage.VERDICT_BATCH, queue, sequence, 0, verdict)


@dataclass(frozen=True, slots=True)
class Packet:
    """A packet the kernel queued for us."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The kernel's answer to a request: `error` is 0 or a negative errno."""

    sequence: int
    error: int


def parse(
    buffer: bytes | bytearray | memoryview, size: int | None = None
) -> Iterator[Packet | Acknowledgement]:
    """The packets and acknowledgements in one netlink datagram; anything else, and
    anything truncated, is skipped (a malformed datagram ends the walk, never raises)."""
    end = len(buffer) if size is None else min(size, len(buffer))
    offset = 0
    while offset + _NLMSG_HEADER.size <= end:
        length, kind, _flags, sequence, _port = _NLMSG_HEADER.unpack_from(buffer, offset)
        if length < _NLMSG_HEADER.size or offset + length > end:
            return
        body = offset + _NLMSG_HEADER.size
        if kind == _NLMSG_ERROR and length >= _NLMSG_HEADER.size + 4:
            (error,) = struct.unpack_from("=i", buffer, body)
            yield Acknowledgement(sequence, error)
        elif kind == QueueMessage.PACKET.netlink_type:
            packet_id = _packet_id(buffer, body + _NFGEN_HEADER.size, offset + length)
            if packet_id is not None:
                yield Packet(packet_id)
        offset += length + (-length % 4)


def _packet_id(buffer: bytes | bytearray | memoryview, offset: int, end: int) -> int | None:
    while offset + _ATTRIBUTE_HEADER.size <= end:
        length, kind = _ATTRIBUTE_HEADER.unpack_from(buffer, offset)
        if length < _ATTRIBUTE_HEADER.size or offset + length > end:
            return None
        if kind & _NLA_TYPE_MASK == PacketAttribute.PACKET_HDR and length >= 8:
            (packet_id,) = struct.unpack_from("!I", buffer, offset + _ATTRIBUTE_HEADER.size)
            return int(packet_id)
        offset += length + (-length % 4)
    return None


# The schedule: sans-IO, fed ids and `now`.


class DelayLine:
    """Packets waiting their time, oldest first; every one waits exactly `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._due: collections.deque[float] = collections.deque()
        self._ids: collections.deque[int] = collections.deque()

    def __len__(self) -> int:
        return len(self._ids)

    def arrive(self, packet_id: int, now: float) -> None:
        """Packet `packet_id` was read at `now` (so it reached the queue before)."""
        self._due.append(now + self.delay_s)
        self._ids.append(packet_id)

    def release(self, now: float) -> int | None:
        """Forget every packet due by `now`; the newest such id, or None if none is due."""
        due, ids = self._due, self._ids
        newest = None
        while due and due[0] <= now:
            due.popleft()
            newest = ids.popleft()
        return newest

    def timeout(self, now: float) -> float | None:
        """Seconds until the oldest packet is due (never negative); None if none waits."""
        return max(0.0, self._due[0] - now) if self._due else None


# The adapter: one netlink socket and one loop.


class NetfilterQueue:
    """A netlink socket bound to one nfnetlink queue."""

    def __init__(self, config: DelayLineConfig) -> None:
        self.config = config
        self._sequence = 0
        self._buffer = bytearray(65536)
        try:
            self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as error:
            raise DelayLineError(f"cannot open a netfilter netlink socket: {error}") from None
        try:
            self._bind()
        except OSError as error:
            self._socket.close()
            raise DelayLineError(f"binding netfilter queue {config.queue}: {error}") from None
        except BaseException:
            self._socket.close()
            raise

    def _bind(self) -> None:
        sock = self._socket
        sock.bind((0, 0))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:  # without CAP_NET_ADMIN; the bind below says so more clearly
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sequence = self._next_sequence()
        sock.send(bind_message(self.config, sequence))
        sock.settimeout(5.0)
        try:
            for _ in range(64):  # bounded; the lab adds its rules only once we are bound
                size = sock.recv_into(self._buffer)
                for item in parse(self._buffer, size):
                    if isinstance(item, Acknowledgement) and item.sequence == sequence:
                        if item.error:
                            hint = (
                                " (another process has bound it, or we lack CAP_NET_ADMIN)"
                                if -item.error == errno.EPERM
                                else ""
                            )
                            raise DelayLineError(
                                f"cannot bind netfilter queue {self.config.queue}: "
                                f"{os.strerror(-item.error)}{hint}"
                            )
                        sock.setblocking(False)
                        return
        except TimeoutError:
            pass
        raise DelayLineError(f"the kernel did not answer binding queue {self.config.queue}")

    def _next_sequence(self) -> int:
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        return self._sequence

    def fileno(self) -> int:
        return self._socket.fileno()

    def receive(self, line: DelayLine, clock: Callable[[], float]) -> None:
        """Read what is waiting (at most `READ_BATCH` datagrams) into `line`, each packet
        stamped with the time it was read."""
        sock, buffer = self._socket, self._buffer
        for _ in range(READ_BATCH):
            try:
                size = sock.recv_into(buffer)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise DelayLineError(f"reading queue {self.config.queue}: {error}") from None
                # Our buffer overflowed: the kernel dropped those packets (fail-closed)
                # and counts them (user_dropped in /proc/net/netfilter/nfnetlink_queue).
                continue
            now = clock()
            for item in parse(buffer, size):
                if isinstance(item, Packet):
                    line.arrive(item.packet_id, now)

    def accept_through(self, packet_id: int) -> None:
        message = accept_through_message(self.config.queue, packet_id, self._next_sequence())
        try:
            self._socket.send(message)
        except BlockingIOError:  # the kernel consumes verdicts synchronously; retry once
            self._socket.setblocking(True)
            try:
                self._socket.send(message)
            finally:
                self._socket.setblocking(False)

    def close(self) -> None:
        self._socket.close()


def serve(queue: NetfilterQueue, clock: Callable[[], float] = time.monotonic) -> None:
    """Hold and release packets until killed. It sleeps in `select` until a packet
    arrives or the oldest is due, so an idle line uses no CPU."""
    line = DelayLine(queue.config.delay_s)
    descriptor = [queue.fileno()]
    while True:
        newest = line.release(clock())
        if newest is not None:
            queue.accept_through(newest)
        readable, _, _ = select.select(descriptor, [], [], line.timeout(clock()))
        if readable:
            queue.receive(line, clock)


def _arguments(argv: list[str] | None) -> DelayLineConfig:
    parser = argparse.ArgumentParser(
        prog="python -m peerline.lab.delayline",
        description="Hold every packet of a netfilter queue for a fixed time, then accept it "
        "(the NAT lab's --delay on kernels without netem).",
    )
    parser.add_argument("--queue", type=int, required=True, help="NFQUEUE number to bind")
    parser.add_argument(
        "--delay-ms", type=float, required=True, help="how long each packet waits (ms)"
    )
    parser.add_argument(
        "--maxlen",
        type=int,
        default=DEFAULT_MAXLEN,
        help=f"packets that may wait at once; more are dropped (default {DEFAULT_MAXLEN})",
    )
    args = parser.parse_args(argv)
    return DelayLineConfig(args.queue, args.delay_ms / 1000, args.maxlen)


def main(argv: list[str] | None = None) -> int:
    """Bind the queue, then leave the serving to a child in a session of its own: the
    process that was started says it is ready and exits, so whoever started it (the
    lab builder) waits for it as for any tool, and the line outlives `lab up`."""
    try:
        config = _arguments(argv)
        queue = NetfilterQueue(config)
    except PeerlineError as error:
        print(f"delay line: {error}", file=sys.stderr)
        return error.exit_code
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        print(f"{READY_LINE}: queue {config.queue}, {config.delay_s * 1000:g} ms, pid {child}")
        return 0
    os.setsid()
    # Nothing more goes to the starter's pipe; stderr (the builder's log file) stays.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, sys.stdin.fileno())
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    try:
        serve(queue)
    except PeerlineError as error:
        print(f"delay line: {error}", file=sys.stderr)
        os._exit(1)
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
