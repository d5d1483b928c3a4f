"""A strict MessagePack codec for the subset the DHT protocol uses.

Values: nil, booleans, integers (-2**63 .. 2**64-1), UTF-8 strings, binary strings and
arrays. Maps, floats, extension types and nesting deeper than ``MAX_DEPTH`` are refused:
no valid whnode message contains them. The encoding is standard MessagePack (smallest
form, as umsgpack and every other implementation write it), so rpcudp peers read it.

Why not umsgpack (rpcudp's codec): it is pure Python, generic and the largest cost per
datagram; decoding untrusted input also reaches Python's recursion limit. This decoder is
iterative over a bounded depth, checks every length against the bytes left before
allocating anything, and raises only ``InvalidMessage``.
"""

from __future__ import annotations

import struct

from whnode.dht.exceptions import InvalidMessage

__all__ = ["MAX_DEPTH", "Packed", "packb", "unpackb"]

MAX_DEPTH = 8
"""Deepest array nesting decoded (whnode messages nest three deep)."""


class Packed:
    """Bytes that are already MessagePack, inserted as they are by ``packb`` (a contact
    listed in thousands of replies is encoded once)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


_UINT = {1: (0xCC, ">B"), 2: (0xCD, ">H"), 4: (0xCE, ">I"), 8: (0xCF, ">Q")}


def packb(value: object) -> bytes:
    """Encode a value of the supported subset (a bug if anything else is passed)."""
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _pack(value: object, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("nesting too deep")
    if isinstance(value, Packed):
        out += value.data
    elif value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        _pack_int(value, out)
    elif isinstance(value, bytes):
        size = len(value)
        if size < 0x100:
            out += b"\xc4" + bytes((size,))
        elif size < 0x10000:
            out += b"\xc5" + struct.pack(">H", size)
        else:
            out += b"\xc6" + struct.pack(">I", size)
        out += value
    elif isinstance(value, str):
        data = value.encode("utf-8")
        size = len(data)
        if size < 32:
            out.append(0xA0 | size)
        elif size < 0x100:
            out += b"\xd9" + bytes((size,))
        elif size < 0x10000:
            out += b"\xda" + struct.pack(">H", size)
        else:
            out += b"\xdb" + struct.pack(">I", size)
        out += data
    elif isinstance(value, list | tuple):
        size = len(value)
        if size < 16:
            out.append(0x90 | size)
        elif size < 0x10000:
            out += b"\xdc" + struct.pack(">H", size)
        else:
            out += b"\xdd" + struct.pack(">I", size)
        for item in value:
            _pack(item, out, depth + 1)
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _pack_int(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80:
        out.append(value)
    elif -32 <= value < 0:
        out.append(value & 0xFF)
    elif value >= 0:
        for width in (1, 2, 4, 8):
            if value < 1 << (8 * width):
                code, layout = _UINT[width]
                out.append(code)
                out += struct.pack(layout, value)
                return
        raise ValueError("integer too large")
    elif value >= -(1 << 7):
        out += b"\xd0" + struct.pack(">b", value)
    elif value >= -(1 << 15):
        out += b"\xd1" + struct.pack(">h", value)
    elif value >= -(1 << 31):
        out += b"\xd2" + struct.pack(">i", value)
    elif value >= -(1 << 63):
        out += b"\xd3" + struct.pack(">q", value)
    else:
        raise ValueError("integer too small")


def unpackb(data: bytes) -> object:
    """Decode exactly one value filling ``data``; InvalidMessage("msgpack") otherwise."""
    try:
        value, end = _unpack(data, 0, 0)
    except (IndexError, struct.error) as exc:
        raise InvalidMessage("msgpack", "truncated") from exc
    if end != len(data):
        raise InvalidMessage("msgpack", "trailing bytes")
    return value


_INTEGERS = {
    0xCC: (1, struct.Struct(">B")),
    0xCD: (2, struct.Struct(">H")),
    0xCE: (4, struct.Struct(">I")),
    0xCF: (8, struct.Struct(">Q")),
    0xD0: (1, struct.Struct(">b")),
    0xD1: (2, struct.Struct(">h")),
    0xD2: (4, struct.Struct(">i")),
    0xD3: (8, struct.Struct(">q")),
}
_LENGTHS = {
    0xC4: (1, "bin"),
    0xC5: (2, "bin"),
    0xC6: (4, "bin"),
    0xD9: (1, "str"),
    0xDA: (2, "str"),
    0xDB: (4, "str"),
    0xDC: (2, "array"),
    0xDD: (4, "array"),
}


def _unpack(data: bytes, position: int, depth: int) -> tuple[object, int]:
    # Truncation inside fixed-size fields surfaces as IndexError/struct.error (unpackb
    # translates them); every variable length is checked against the bytes left.
    code = data[position]
    position += 1
    if code < 0x80:
        return code, position
    if code == 0xC4:  # bin 8: ids, keys and addresses
        end = position + 1 + data[position]
        if end > len(data):
            raise InvalidMessage("msgpack", "truncated")
        return data[position + 1 : end], end
    if 0x90 <= code <= 0x9F:
        return _array(data, position, code & 0x0F, depth)
    if 0xA0 <= code <= 0xBF:
        return _text(data, position, code & 0x1F)
    if code >= 0xE0:
        return code - 0x100, position
    if code == 0xC0:
        return None, position
    if code == 0xC2:
        return False, position
    if code == 0xC3:
        return True, position
    integer = _INTEGERS.get(code)
    if integer is not None:
        width, layout = integer
        return layout.unpack_from(data, position)[0], position + width
    length = _LENGTHS.get(code)
    if length is None:
        raise InvalidMessage("msgpack", f"unsupported type {code:#04x}")
    width, kind = length
    size = int.from_bytes(data[position : position + width], "big")
    position += width
    if position > len(data):
        raise InvalidMessage("msgpack", "truncated")
    if kind == "array":
        return _array(data, position, size, depth)
    if kind == "str":
        return _text(data, position, size)
    end = position + size
    if end > len(data):
        raise InvalidMessage("msgpack", "truncated")
    return data[position:end], end


def _text(data: bytes, position: int, size: int) -> tuple[str, int]:
    end = position + size
    if end > len(data):
        raise InvalidMessage("msgpack", "truncated")
    try:
        return data[position:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise InvalidMessage("msgpack", "invalid UTF-8") from exc


def _array(data: bytes, position: int, size: int, depth: int) -> tuple[list[object], int]:
    if depth >= MAX_DEPTH:
        raise InvalidMessage("msgpack", "nesting too deep")
    if size > len(data) - position:  # every element takes at least one byte
        raise InvalidMessage("msgpack", "truncated")
    items: list[object] = []
    append = items.append
    for _ in range(size):
        code = data[position]
        if code < 0x80:  # positive fixint and bin 8 (ids, keys, addresses) inline
            append(code)
            position += 1
        elif code == 0xC4:
            end = position + 2 + data[position + 1]
            if end > len(data):
                raise InvalidMessage("msgpack", "truncated")
            append(data[position + 2 : end])
            position = end
        else:
            item, position = _unpack(data, position, depth + 1)
            append(item)
    return items, position
