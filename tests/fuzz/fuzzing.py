"""What every fuzz module here shares: the seeded input stream, the byte-level
mutations, and the command line (a count for the seeded loop, or --atheris)."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator, Sequence


def mutate_bytes(rng: random.Random, buf: bytearray, how: int) -> None:
    """The mutations of any format, by number: 0 truncates, 1 flips a bit, 2
    overwrites a byte (each only when there is a byte); anything else appends up
    to 8 random bytes."""
    if how == 0 and buf:
        del buf[rng.randrange(len(buf)) :]
    elif how == 1 and buf:
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif how == 2 and buf:
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    else:
        buf += rng.randbytes(rng.randrange(9))


def inputs(
    count: int,
    seed: int,
    corpus: Sequence[bytes],
    mutate: Callable[[random.Random, bytes], bytes],
    raw_max: int,
) -> Iterator[bytes]:
    """`count` inputs from `seed`: every tenth is random bytes (shorter than
    `raw_max`), the others a mutation of the corpus, in turn."""
    rng = random.Random(seed)
    for i in range(count):
        if i % 10 == 0:
            yield rng.randbytes(rng.randrange(raw_max))
        else:
            yield mutate(rng, corpus[i % len(corpus)])


def main(
    argv: list[str],
    target: Callable[[bytes], object],
    run: Callable[[int, int], int],
    default_count: int,
) -> None:
    """Command line: a count for the random loop (`run(count, seed)` returns how
    many parsed), or --atheris to hand `target` to libFuzzer."""
    if argv[:1] == ["--atheris"]:
        import atheris  # type: ignore[import-not-found]  # noqa: PLC0415 (optional)

        atheris.Setup(sys.argv[:1] + argv[1:], target)
        atheris.Fuzz()
        return
    count = int(argv[0]) if argv else default_count
    parsed = run(count, random.randrange(2**32))
    sys.stdout.write(f"{count} inputs, {parsed} parsed, no unexpected exception\n")
