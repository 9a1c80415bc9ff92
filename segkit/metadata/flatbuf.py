"""A small, bounds-checked flatbuffer table reader: malformed bytes raise ValueError, never read out of range.

Every offset, vtable, vector length and string is checked against the buffer before use. Offsets to tables,
vectors and strings are unsigned and point forward, so reads cannot loop; a budget on the number of tables
visited bounds the work a file with many shared (aliased) tables can cause.
"""

from __future__ import annotations

import struct
from typing import NoReturn

MAX_TABLES = 1_000_000  # the same default limit as flatbuffers' C++ Verifier

I8 = struct.Struct("<b")
U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
I32 = struct.Struct("<i")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
F32 = struct.Struct("<f")


class Reader:
    """One flatbuffer held as bytes; `what` prefixes every error message (e.g. "malformed TFLite model")."""

    def __init__(self, buf: bytes, what: str, max_tables: int = MAX_TABLES) -> None:
        self.buf = buf
        self.what = what
        self.tables_left = max_tables

    def fail(self, message: str) -> NoReturn:
        """Raise the ValueError naming the problem."""
        raise ValueError(f"{self.what}: {message}")

    def read(self, fmt: struct.Struct, pos: int, what: str) -> int | float:
        """A scalar at `pos`, checked to lie inside the buffer and be aligned to its size."""
        if pos < 0 or pos + fmt.size > len(self.buf):
            self.fail(f"{what} at byte {pos} lies outside the {len(self.buf)}-byte buffer")
        if pos % fmt.size:
            self.fail(f"{what} at byte {pos} is not aligned to {fmt.size} bytes")
        value: int | float = fmt.unpack_from(self.buf, pos)[0]
        return value

    def identifier(self) -> bytes:
        """The 4-byte file identifier (bytes 4..8)."""
        if len(self.buf) < 8:
            self.fail(f"{len(self.buf)} bytes is too short for a flatbuffer (at least 8 needed)")
        return bytes(self.buf[4:8])

    def root(self, path: str) -> Table:
        """The root table."""
        self.identifier()
        return self.table_at(int(self.read(U32, 0, "root offset")), path)

    def table_at(self, pos: int, path: str) -> Table:
        """The table starting at `pos`, with its vtable checked."""
        self.tables_left -= 1
        if self.tables_left < 0:
            self.fail("too many tables (more than the limit of flatbuffer tables to visit)")
        vtable = pos - int(self.read(I32, pos, f"{path}: vtable offset"))
        vsize = int(self.read(U16, vtable, f"{path}: vtable size"))
        tsize = int(self.read(U16, vtable + 2, f"{path}: table size"))
        if vsize < 4 or vsize % 2 or vtable + vsize > len(self.buf):
            self.fail(f"{path}: vtable of {vsize} bytes at byte {vtable} is invalid")
        if tsize < 4 or pos + tsize > len(self.buf):
            self.fail(f"{path}: table of {tsize} bytes at byte {pos} runs past the end")
        return Table(self, pos, vtable, vsize, tsize, path)

    def vector_at(self, pos: int, elem_size: int, what: str) -> tuple[int, int]:
        """(start, length) of the vector whose length word is at `pos`."""
        n = int(self.read(U32, pos, f"{what}: vector length"))
        start = pos + 4
        if start + n * elem_size > len(self.buf):
            self.fail(f"{what}: vector of {n} elements at byte {pos} runs past the end")
        return start, n

    def string_at(self, pos: int, what: str) -> str:
        """The UTF-8 string whose length word is at `pos` (checked to be NUL-terminated)."""
        start, n = self.vector_at(pos, 1, what)
        if start + n >= len(self.buf) or self.buf[start + n] != 0:
            self.fail(f"{what}: string at byte {pos} is not NUL-terminated")
        try:
            return bytes(self.buf[start : start + n]).decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"{what}: string is not valid UTF-8 ({e.reason})")


class Table:
    """A checked view of one table; fields are read by their id (declaration order in the .fbs schema)."""

    __slots__ = ("path", "pos", "r", "tsize", "vsize", "vtable")

    def __init__(self, r: Reader, pos: int, vtable: int, vsize: int, tsize: int, path: str) -> None:
        self.r, self.pos, self.vtable, self.vsize, self.tsize, self.path = r, pos, vtable, vsize, tsize, path

    def _field(self, field: int, size: int) -> int | None:
        """Absolute position of field `field` (`size` bytes), or None when absent."""
        slot = 4 + 2 * field
        if slot + 2 > self.vsize:
            return None
        voffset = int(self.r.read(U16, self.vtable + slot, f"{self.path}: field {field} slot"))
        if voffset == 0:
            return None
        if voffset < 4 or voffset + size > self.tsize:
            self.r.fail(f"{self.path}: field {field} lies outside its table")
        return self.pos + voffset

    def _target(self, field: int) -> int | None:
        """Where the uoffset in field `field` points, or None when absent."""
        p = self._field(field, 4)
        return None if p is None else p + int(self.r.read(U32, p, f"{self.path}: field {field} offset"))

    def scalar(self, field: int, fmt: struct.Struct, default: int | float = 0) -> int | float:
        """A scalar field, or `default` when absent."""
        p = self._field(field, fmt.size)
        return default if p is None else self.r.read(fmt, p, f"{self.path}: field {field}")

    def string(self, field: int) -> str | None:
        """A string field, or None when absent."""
        t = self._target(field)
        return None if t is None else self.r.string_at(t, f"{self.path}: field {field}")

    def table(self, field: int, name: str) -> Table | None:
        """A sub-table field, or None when absent."""
        t = self._target(field)
        return None if t is None else self.r.table_at(t, f"{self.path}.{name}")

    def vector(self, field: int, elem_size: int) -> tuple[int, int] | None:
        """(start, length) of a vector field, or None when absent."""
        t = self._target(field)
        return None if t is None else self.r.vector_at(t, elem_size, f"{self.path}: field {field}")

    def scalars(self, field: int, fmt: struct.Struct) -> tuple[int | float, ...] | None:
        """A vector of scalars, or None when absent."""
        v = self.vector(field, fmt.size)
        if v is None:
            return None
        start, n = v
        return struct.unpack_from(f"<{n}{fmt.format[-1]}", self.r.buf, start)

    def blob(self, field: int) -> bytes | None:
        """A [ubyte] vector field as bytes, or None when absent."""
        v = self.vector(field, 1)
        return None if v is None else bytes(self.r.buf[v[0] : v[0] + v[1]])

    def tables(self, field: int, name: str) -> list[Table]:
        """A vector of tables ([] when absent)."""
        v = self.vector(field, 4)
        if v is None:
            return []
        start, n = v
        out = []
        for k in range(n):
            p, path = start + 4 * k, f"{self.path}.{name}[{k}]"
            out.append(self.r.table_at(p + int(self.r.read(U32, p, path)), path))
        return out

    def strings(self, field: int) -> list[str]:
        """A vector of strings ([] when absent)."""
        v = self.vector(field, 4)
        if v is None:
            return []
        start, n = v
        what = f"{self.path}: field {field}"
        return [self.r.string_at(start + 4 * k + int(self.r.read(U32, start + 4 * k, what)), what) for k in range(n)]
