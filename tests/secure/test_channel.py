"""TLS channels between the parties: framing, mutual authentication, protocol exchange."""

from __future__ import annotations

import socket
import ssl
import threading

import numpy as np
import pytest

from stamen.secure.boolean import deal_and_triples, secret_and
from stamen.secure.certificates import make_certificates
from stamen.secure.channel import (
    Channel,
    client_context,
    connect,
    pack,
    server_context,
    unpack,
)
from stamen.secure.prg import expand, new_seed


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def listen(certs, handler):
    """Serve one TLS connection on 127.0.0.1 with S2's certificate; returns the port."""
    context = server_context(certs / "s2.pem", certs / "s2.key", certs / "ca.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    result = {}

    def serve():
        with listener:
            raw, _ = listener.accept()
            try:
                channel = Channel(context.wrap_socket(raw, server_side=True))
                result["value"] = handler(channel)
                channel.close()
            except (ssl.SSLError, OSError) as exc:
                result["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, result


def s1_channel(certs, port, folder=None):
    folder = folder or certs
    context = client_context(folder / "s1.pem", folder / "s1.key", certs / "ca.pem")
    return connect(("127.0.0.1", port), context, "s2", timeout=10)


def test_messages_round_trip_with_arrays_bytes_and_json(certs):
    port, thread, result = listen(certs, lambda channel: channel.send(channel.receive()))
    channel = s1_channel(certs, port)
    message = {
        "words": np.arange(6, dtype=np.uint64).reshape(2, 3) * np.uint64(2**61),
        "mask": np.array([True, False]),
        "seed": b"\x00\x01" * 16,
        "round": 3,
        "names": ["a", "b"],
    }
    channel.send(message)
    back = channel.receive()
    thread.join(10)
    assert np.array_equal(back["words"], message["words"]) and back["words"].dtype == np.uint64
    assert back["mask"].tolist() == [True, False] and back["seed"] == message["seed"]
    assert back["round"] == 3 and back["names"] == ["a", "b"]
    assert channel.bytes_sent == channel.bytes_received > 48


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(0, np.uint64),
        np.zeros((0, 5), np.uint64),
        np.array(3.0),
        np.arange(10, dtype=">u8")[::2],
        np.arange(12, dtype=np.int32).reshape(3, 4).T,
    ],
    ids=["empty", "empty-rows", "scalar", "strided-big-endian", "transposed"],
)
def test_frames_keep_shape_dtype_and_values_of_any_array(array):
    back = unpack(bytearray(pack({"a": array})))["a"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)


def test_a_party_without_a_certificate_of_the_ca_is_refused(certs, tmp_path):
    other = make_certificates(tmp_path / "other")  # a different CA
    port, thread, result = listen(certs, lambda channel: channel.receive())
    with pytest.raises((ssl.SSLError, ConnectionError)):
        channel = s1_channel(certs, port, folder=other)
        channel.send({"x": 1})
        channel.receive()
    thread.join(10)
    assert "value" not in result


def test_a_protocol_runs_across_the_channel(certs):
    x, y = expand(new_seed(), 4), expand(new_seed(), 4)
    x1, y1 = expand(new_seed(), 4), expand(new_seed(), 4)
    t1, t2 = deal_and_triples(1, (4,))
    port, thread, result = listen(
        certs,
        lambda ch: ch.exchange(secret_and(x ^ x1, y ^ y1, t2.take(0), first=False), leads=False),
    )
    protocol = secret_and(x1, y1, t1.take(0), first=True)
    mine = s1_channel(certs, port).exchange(protocol, leads=True)
    thread.join(10)
    assert np.array_equal(mine ^ result["value"], x & y)
