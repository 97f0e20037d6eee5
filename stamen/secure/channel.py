"""Framed messages between the secure-aggregation parties over mutually authenticated TLS.

A message is a dict of numpy arrays, bytes and JSON values, sent as one frame: an 8-byte
length, a JSON header describing each entry, then the raw array and byte buffers (no
pickle). Each party has a certificate signed by the deployment's CA (``certificates``);
the listening side requires the peer's certificate, so S2 and the dealer only talk to a
holder of a CA-signed key (S1).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

MAX_FRAME = 2**34  # 16 GiB: refuse absurd lengths from a broken peer
_LENGTH = struct.Struct("!Q")


class ChannelError(ConnectionError):
    """The peer closed the connection or sent a malformed frame."""


class Channel:
    """One TLS connection carrying whole messages."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        # Protocols exchange many small messages: without TCP_NODELAY each waits on
        # Nagle's algorithm and the peer's delayed acknowledgement (~40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.bytes_sent = 0
        self.bytes_received = 0

    def send(self, message: dict[str, Any]) -> None:
        parts = _parts(message)
        length = sum(len(part) for part in parts)
        self.sock.sendall(_LENGTH.pack(length))
        for part in parts:  # no joined copy of large arrays
            self.sock.sendall(part)
        self.bytes_sent += _LENGTH.size + length

    def receive(self) -> dict[str, Any]:
        (length,) = _LENGTH.unpack(self._exactly(_LENGTH.size))
        if length > MAX_FRAME:
            raise ChannelError(f"frame of {length} bytes refused")
        frame = self._exactly(length)
        self.bytes_received += _LENGTH.size + length
        return unpack(frame)

    def exchange(self, protocol: Generator[np.ndarray, np.ndarray, Any], leads: bool) -> Any:
        """Run one party's protocol generator against the peer at the other end.

        In each exchange the leading party (S1) sends first and the other receives first:
        two parties both sending a large message at once would fill the socket buffers
        and block each other (and one TLS connection must not be read and written from
        two threads at once)."""
        try:
            outgoing = next(protocol)
            while True:
                if leads:
                    self.send({"words": outgoing})
                    incoming = self.receive()
                else:
                    incoming = self.receive()
                    self.send({"words": outgoing})
                outgoing = protocol.send(incoming["words"])
        except StopIteration as done:
            return done.value

    def close(self) -> None:
        self.sock.close()

    def _exactly(self, count: int) -> bytearray:
        frame = bytearray(count)  # read in place: the arrays unpacked from it are writable
        view, done = memoryview(frame), 0
        while done < count:
            got = self.sock.recv_into(view[done:], min(count - done, 2**22))
            if not got:
                raise ChannelError("the peer closed the connection")
            done += got
        return frame


def pack(message: dict[str, Any]) -> bytes:
    """A message as bytes: header length, JSON header, then the raw buffers."""
    return b"".join(_parts(message))


def _parts(message: dict[str, Any]) -> list[bytes | memoryview]:
    header, buffers = {}, []
    for key, value in message.items():
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value).reshape(value.shape)
            header[key] = {"array": array.dtype.str, "shape": array.shape}
            buffers.append(memoryview(array.reshape(-1).view(np.uint8)))
        elif isinstance(value, bytes):
            header[key] = {"bytes": len(value)}
            buffers.append(value)
        else:
            header[key] = {"json": value}
    head = json.dumps(header).encode()
    return [_LENGTH.pack(len(head)) + head, *buffers]


def unpack(frame: bytes | bytearray) -> dict[str, Any]:
    """The inverse of ``pack``; ChannelError for a malformed frame."""
    view = memoryview(frame)
    try:
        (head_length,) = _LENGTH.unpack(view[: _LENGTH.size])
        offset = _LENGTH.size + head_length
        header = json.loads(bytes(view[_LENGTH.size : offset]))
        message = {}
        for key, spec in header.items():
            if "json" in spec:
                message[key] = spec["json"]
                continue
            if "bytes" in spec:
                size = spec["bytes"]
                message[key] = bytes(view[offset : offset + size])
            else:
                dtype, shape = np.dtype(spec["array"]), tuple(spec["shape"])
                size = dtype.itemsize * int(np.prod(shape))
                message[key] = np.frombuffer(view[offset : offset + size], dtype).reshape(shape)
            offset += size
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise ChannelError(f"malformed frame: {exc}") from exc
    if offset != len(frame):
        raise ChannelError(f"frame of {len(frame)} bytes holds {offset}")
    return message


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS for a listening party: its own certificate, and the peer's required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS for the connecting party (S1): its certificate, and the server's checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    return context


def connect(
    address: tuple[str, int], context: ssl.SSLContext, name: str, timeout: float
) -> Channel:
    """Open a channel to the party listening at ``address`` whose certificate names ``name``."""
    sock = socket.create_connection(address, timeout=timeout)
    return Channel(context.wrap_socket(sock, server_hostname=name))
