"""CRC-32 of a concatenation from the CRC-32s of its parts (zlib's ``crc32_combine``,
which Python's :mod:`zlib` does not expose).

Appending ``n`` zero bits to a message is a linear map on its CRC register over
GF(2); the map for ``n`` bytes is a 32x32 bit matrix, built here by squaring the
one-zero-bit matrix. ``crc(A + B) = zeros(len(B)) applied to crc(A), xor crc(B)``.
The matrices for every power-of-two length are computed once, so a combine costs
one matrix-vector product per set bit of ``len(B)``: microseconds. Publish uses it
to take a payload file's CRC, computed on another thread, into the bundle's.
"""

from __future__ import annotations

_POLY = 0xEDB88320  # CRC-32 (reflected), as zlib and gzip use it
_POWERS: list[list[int]] = []  # _POWERS[k]: the matrix appending 2**k zero BYTES


def _times(mat: list[int], vec: int) -> int:
    out = 0
    i = 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _square(mat: list[int]) -> list[int]:
    return [_times(mat, mat[n]) for n in range(32)]


def _powers(count: int) -> list[list[int]]:
    if not _POWERS:
        one_bit = [_POLY] + [1 << n for n in range(31)]  # one zero bit
        two_bits = _square(one_bit)
        four_bits = _square(two_bits)
        _POWERS.append(_square(four_bits))  # eight bits: one byte
    while len(_POWERS) < count:
        _POWERS.append(_square(_POWERS[-1]))
    return _POWERS


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc1 = crc32(A)``, ``crc2 = crc32(B)`` and
    ``len2 = len(B)``."""
    if len2 < 0:
        raise ValueError("negative length")
    if len2 == 0:
        return crc1
    powers = _powers(len2.bit_length())
    k = 0
    while len2:
        if len2 & 1:
            crc1 = _times(powers[k], crc1)
        len2 >>= 1
        k += 1
    return (crc1 ^ crc2) & 0xFFFFFFFF
