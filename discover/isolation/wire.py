"""The wire format between the engine and its worker processes: length-prefixed frames.

A frame is an 8-byte big-endian length followed by that many bytes. The engine sends jobs
as pickles (the engine is trusted); a worker sends results as JSON objects of at most
``MAX_RESULT_BYTES``, which the engine never unpickles.
"""

from __future__ import annotations

import os
import struct

HEADER = struct.Struct(">Q")
MAX_RESULT_BYTES = 64 * 1024 * 1024


def write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(HEADER.pack(len(payload)) + payload)
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_exactly(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    """One frame, blocking; None at end of file."""
    header = read_exactly(fd, HEADER.size)
    if header is None:
        return None
    return read_exactly(fd, HEADER.unpack(header)[0])
