"""The delay line's nfnetlink_queue messages and its schedule, without a kernel."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerline.errors import UsageError
from peerline.lab.delayline import (
    Acknowledgement,
    DelayLine,
    DelayLineConfig,
    Packet,
    accept_through_message,
    bind_message,
    main,
    parse,
)


def attributes(body: bytes) -> dict[int, bytes]:
    """type -> payload of a run of netlink attributes (the test's own reader)."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        found[kind] = body[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def split(message: bytes) -> tuple[tuple[int, int, int, int], tuple[int, int, int], bytes]:
    """(length, type, flags, sequence), (family, version, queue) and the attributes."""
    length, kind, flags, sequence, _port = struct.unpack_from("=IHHII", message)
    nfgen = struct.unpack_from("!BBH", message, 16)
    return (length, kind, flags, sequence), nfgen, message[20:]


def kernel_packet(packet_id: int, queue: int = 25000, extra: bytes = b"") -> bytes:
    """A PACKET message as the kernel sends it: the packet header first."""
    header = struct.pack("=HH", 11, 1) + struct.pack("!IHB", packet_id, 0x0800, 0) + b"\0"
    mark = struct.pack("=HH", 8, 3) + struct.pack("!I", 7)
    body = struct.pack("!BBH", 2, 0, queue) + extra + mark + header
    return struct.pack("=IHHII", 16 + len(body), 0x0300, 0, 0, 0) + body


def kernel_ack(sequence: int, error: int) -> bytes:
    body = struct.pack("=i", error) + struct.pack("=IHHII", 16, 0x0302, 5, sequence, 0)
    return struct.pack("=IHHII", 16 + len(body), 2, 0, sequence, 0) + body


def test_bind_asks_for_metadata_only_whole_gso_packets_and_an_answer() -> None:
    message = bind_message(DelayLineConfig(queue=25000, delay_s=0.05, maxlen=1234), sequence=9)
    (length, kind, flags, sequence), (_family, version, queue), body = split(message)
    assert length == len(message)
    assert kind == 3 << 8 | 2  # NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG
    assert flags == 0x1 | 0x4  # a request, acknowledged
    assert (sequence, version, queue) == (9, 0, 25000)
    found = attributes(body)
    assert found[1] == struct.pack("!BxH", 1, 2)  # NFQNL_CFG_CMD_BIND
    assert found[2] == struct.pack("!IB", 0, 1)  # copy range 0, NFQNL_COPY_META
    assert found[3] == struct.pack("!I", 1234)
    gso_only = struct.pack("!I", 1 << 2)  # not FAIL_OPEN: a full queue drops
    assert found[4] == gso_only
    assert found[5] == gso_only


def test_accept_through_is_one_batch_verdict() -> None:
    message = accept_through_message(queue=7, packet_id=0xDEADBEEF, sequence=3)
    (length, kind, flags, _sequence), (_family, _version, queue), body = split(message)
    assert (length, kind, flags, queue) == (len(message), 3 << 8 | 3, 0x1, 7)
    assert attributes(body) == {2: struct.pack("!II", 1, 0xDEADBEEF)}  # NF_ACCEPT, id


def test_parse_finds_every_packet_and_answer_in_a_datagram() -> None:
    broken = struct.pack("=HH", 2, 9)  # an attribute shorter than its own header
    datagram = kernel_packet(41) + kernel_ack(9, -16) + kernel_packet(42, extra=broken)
    assert list(parse(datagram)) == [Packet(41), Acknowledgement(9, -16)]
    assert list(parse(kernel_packet(5) + kernel_packet(6))) == [Packet(5), Packet(6)]
    assert list(parse(kernel_ack(1, 0))) == [Acknowledgement(1, 0)]


def test_parse_stops_at_truncation_and_reads_only_the_size_received() -> None:
    whole = kernel_packet(1) + kernel_packet(2)
    assert list(parse(whole[:-1])) == [Packet(1)]
    buffer = bytearray(whole + bytes(100))
    assert list(parse(buffer, len(kernel_packet(1)))) == [Packet(1)]
    assert list(parse(b"")) == []


@given(st.binary(max_size=300))
def test_parse_never_raises(data: bytes) -> None:
    for item in parse(data):
        assert isinstance(item, Packet | Acknowledgement)


def test_each_packet_waits_its_delay_and_they_leave_in_order() -> None:
    line = DelayLine(0.05)
    assert line.release(0.0) is None
    assert line.timeout(0.0) is None
    line.arrive(1, now=10.0)
    line.arrive(2, now=10.01)
    line.arrive(3, now=10.03)
    assert line.timeout(10.03) == pytest.approx(0.02)
    assert line.release(10.049) is None
    assert line.release(10.06) == 2  # 1 and 2 are due: one verdict up to 2
    assert len(line) == 1
    assert line.timeout(10.5) == 0.0  # late, never negative
    assert line.release(10.5) == 3
    assert line.release(11.0) is None
    assert line.timeout(11.0) is None


def test_config_refuses_what_the_kernel_would() -> None:
    with pytest.raises(UsageError, match="queue must be"):
        DelayLineConfig(queue=65536, delay_s=0.01)
    with pytest.raises(UsageError, match="delay must be"):
        DelayLineConfig(queue=1, delay_s=0)
    with pytest.raises(UsageError, match="maxlen"):
        DelayLineConfig(queue=1, delay_s=0.01, maxlen=0)


def test_a_bad_command_line_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--queue", "70000", "--delay-ms", "5"]) == 2
    assert capsys.readouterr().err == "delay line: queue must be 0-65535, not 70000\n"
    with pytest.raises(SystemExit) as exited:
        main(["--queue", "1"])
    assert exited.value.code == 2
