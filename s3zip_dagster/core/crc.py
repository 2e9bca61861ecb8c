"""CRC-32 arithmetic: combining the CRCs of adjacent byte ranges, and S3's base64 form.

Python's zlib computes a CRC-32 but cannot join two of them. Joining is what lets an
entry's CRC come from S3: each copied range answers with its own CRC-32 and the ranges
are combined here, without reading a byte. The method is zlib's crc32_combine: the CRC of
A followed by B equals (CRC(A) times x^(8 * len(B)) modulo the CRC polynomial) XOR CRC(B),
with polynomials stored bit-reflected as zlib stores them.
"""

import base64
import zlib

_POLY = 0xEDB88320  # CRC-32 (ISO 3309, used by ZIP and S3) in reflected bit order
_X0 = 0x80000000  # the polynomial "1" in reflected order


def _multiply(a: int, b: int) -> int:
    """Return a(x) * b(x) modulo the CRC polynomial, both reflected."""
    product = 0
    mask = _X0
    while a:
        if a & mask:
            product ^= b
            a ^= mask
        mask >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _powers_of_x() -> list[int]:
    """x^(2^k) modulo the polynomial for k = 0..63, so any x^n is a product of a few."""
    table = [_X0 >> 1]  # x^1
    for _ in range(63):
        table.append(_multiply(table[-1], table[-1]))
    return table


_X_POW_2K = _powers_of_x()


def _x_to_the(bits: int) -> int:
    """Return x^bits modulo the polynomial."""
    result = _X0
    k = 0
    while bits:
        if bits & 1:
            result = _multiply(_X_POW_2K[k], result)
        bits >>= 1
        k += 1
    return result


def crc32_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """Return the CRC-32 of A + B from CRC(A), CRC(B) and the length of B in bytes."""
    if length_b < 0:
        raise ValueError(f"length_b must be >= 0, got {length_b}")
    return _multiply(_x_to_the(8 * length_b), crc_a) ^ crc_b


def crc32_of_tail(crc_head: int, crc_whole: int, length_tail: int) -> int:
    """Return CRC(B) from CRC(A), CRC(A + B) and the length of B.

    The combination is an XOR with a term that depends only on CRC(A) and len(B), so the
    same operation undoes it.
    """
    return crc32_combine(crc_head, crc_whole, length_tail)


class RunningCrc:
    """The CRC-32 of a sequence of ranges appended in order, each given by CRC and length."""

    __slots__ = ("value", "length")

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def add_bytes(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)
        self.length += len(data)

    def add_crc(self, crc: int, length: int) -> None:
        self.value = crc32_combine(self.value, crc, length)
        self.length += length


def crc32_to_s3(crc: int) -> str:
    """S3's ChecksumCRC32 form: the 4 big-endian bytes, base64-encoded."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def crc32_from_s3(value: str) -> int:
    """Parse S3's ChecksumCRC32 form; raise ValueError for a composite (`-N`) value."""
    if "-" in value:
        raise ValueError(f"{value!r} is a composite checksum, not the CRC-32 of the bytes")
    raw = base64.b64decode(value, validate=True)
    if len(raw) != 4:
        raise ValueError(f"{value!r} does not decode to 4 bytes")
    return int.from_bytes(raw, "big")
