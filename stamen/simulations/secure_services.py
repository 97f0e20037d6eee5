"""The dealer and the second server S2 as network services, each its own process.

Both listen on TLS and serve only a peer holding a certificate of the deployment's CA (S1).
S1 talks to each; the dealer never talks to S2: it seals S2's randomness to S2's X25519 key
and S1 relays it unread (``envelope``).

- Dealer (``stamen dealer``): ``{"op": "round", "context", "n", "d", "s2-key",
  "s2-key-signature", "s2-key-certificate"}`` -> ``{"s1": <S1's share>, "s2": <S2's share,
  sealed>}``, or ``{"error"}`` when S2's key is not certified by the CA (``key_binding``).
  Once it has answered, it deals the next round's randomness for the same ``(n, d)`` in a
  background thread, so that a training run's rounds do not wait on the dealer's ``A A^T``
  (fresh randomness each time: a deal is used once).
- S2 (``stamen secure-server``): ``{"op": "hello"}`` -> its public key, signed with its TLS
  key, and its certificate;
  ``{"op": "round", "context", "clients", "envelopes", "dealer", "d", "bits", "rule",
  "num-byzantine", "rule-seed"}`` -> ``{"opened": mask}``, then S2's side of
  ``protocol.server_round`` over the same connection.
- ``{"op": "stop"}`` ends a service.

Each service writes ``<host>:<port>`` to ``ready_file`` once it listens (port 0 picks a free
port), so a parent process can start it and connect.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from stamen.experiment import Experiment
from stamen.secure.certificates import make_certificates
from stamen.secure.channel import Channel, ChannelError, pack, server_context, unpack
from stamen.secure.envelope import (
    EnvelopeError,
    dealer_context,
    envelope_context,
    open_envelope,
    public_bytes,
    seal,
)
from stamen.secure.key_binding import CertifiedKey, KeyBindingError, certify_key, verified_key
from stamen.secure.protocol import deal_round, dealer_message, dealer_share, server_round
from stamen.secure.rules import distance_rule

log = logging.getLogger(__name__)


@dataclass
class Service:
    """A service started as a child process on 127.0.0.1."""

    process: subprocess.Popen
    address: str

    def stop(self, timeout: float = 10.0) -> None:
        """End it by its PID (SIGTERM, then SIGKILL) unless it already ended."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


@contextlib.contextmanager
def secure_services(experiment: Experiment, out_dir: Path) -> Iterator[Experiment]:
    """For ``strategy = "secure"`` without S2's address (a simulation): start S2 and the
    dealer on 127.0.0.1 with fresh certificates in ``out_dir/secure`` and yield the
    experiment with their addresses; stop both on exit. Otherwise yield it unchanged."""
    if experiment.strategy != "secure" or experiment.secure_s2:
        yield experiment
        return
    folder = Path(out_dir) / "secure"
    certs = make_certificates(certificates_folder(experiment, out_dir))
    started: list[Service] = []
    try:
        started += [spawn(party, certs, folder) for party in ("s2", "dealer")]
        yield experiment.replace(
            secure_s2=started[0].address,
            secure_dealer=started[1].address,
            secure_certs=str(certs),
        )
    finally:
        for service in started:
            service.stop()


def certificates_folder(experiment: Experiment, out_dir: Path) -> Path:
    """The run's certificates: ``secure-certs``, or those a simulation makes in ``out_dir``."""
    if experiment.secure_certs:
        return Path(experiment.secure_certs)
    return Path(out_dir) / "secure" / "certs"


def spawn(party: str, certs: Path, folder: Path, timeout: float = 60.0) -> Service:
    """Start ``stamen dealer`` or ``stamen secure-server`` on a free loopback port."""
    command = {"dealer": "dealer", "s2": "secure-server"}[party]
    ready = Path(folder) / f"{party}.address"
    ready.unlink(missing_ok=True)
    log_file = (Path(folder) / f"{party}.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stamen",
            command,
            "--certs",
            str(certs),
            "--ready-file",
            str(ready),
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while not ready.exists() or not ready.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{party} did not start; see {Path(folder) / f'{party}.log'}")
        time.sleep(0.05)
    return Service(process, ready.read_text())


def serve(party: str, address: tuple[str, int], certs: Path, ready_file: Path | None) -> None:
    """Run the ``"dealer"`` or ``"s2"`` service until told to stop."""
    handles = {"dealer": _dealer, "s2": _second_server}
    handle = handles[party](certs)
    context = server_context(certs / f"{party}.pem", certs / f"{party}.key", certs / "ca.pem")
    with socket.create_server(address) as listener:
        host, port = listener.getsockname()[:2]
        if ready_file is not None:
            ready_file.write_text(f"{host}:{port}")
        while True:
            raw, peer = listener.accept()
            try:
                channel = Channel(context.wrap_socket(raw, server_side=True))
            except OSError as exc:  # e.g. a peer without a certificate of the CA
                log.warning("%s: refused a connection from %s: %s", party, peer, exc)
                raw.close()
                continue
            try:
                while True:
                    request = channel.receive()
                    if request.get("op") == "stop":
                        channel.close()
                        return
                    handle(channel, request)
            except (ChannelError, OSError) as exc:
                log.warning("%s: connection from %s ended: %s", party, peer, exc)
                channel.close()


def _dealer(certs: Path):
    ca = (certs / "ca.pem").read_bytes()
    ahead = ThreadPoolExecutor(max_workers=1)
    dealt: dict[tuple[int, int], Future] = {}

    def handle(channel: Channel, request: dict) -> None:
        offered = CertifiedKey(
            request["s2-key"], request["s2-key-signature"], request["s2-key-certificate"]
        )
        try:
            s2_key = X25519PublicKey.from_public_bytes(verified_key(offered, ca))
        except KeyBindingError as exc:
            log.error("dealer: %s", exc)
            channel.send({"error": f"dealer: {exc}"})
            return
        size = int(request["n"]), int(request["d"])
        pending = dealt.pop(size, None)
        dealt.clear()  # a different size: the one dealt ahead is discarded unused
        s1, s2 = pending.result() if pending else deal_round(*size)
        dealt[size] = ahead.submit(deal_round, *size)
        sealed = seal(s2_key, pack(dealer_message(s2)), dealer_context(request["context"]))
        channel.send({"s2": sealed, **{f"s1-{k}": v for k, v in dealer_message(s1).items()}})

    return handle


def _second_server(certs: Path):
    key = X25519PrivateKey.generate()  # a fresh key per process, certified with S2's TLS key
    certified = certify_key(public_bytes(key.public_key()), certs)

    def handle(channel: Channel, request: dict) -> None:
        if request.get("op") == "hello":
            channel.send(
                {
                    "public-key": certified.public_key,
                    "key-signature": certified.signature,
                    "key-certificate": certified.certificate,
                }
            )
            return
        context, d = request["context"], int(request["d"])
        clients = [int(c) for c in request["clients"]]
        rows, opened = [], np.zeros(len(clients), dtype=bool)
        for i, client in enumerate(clients):
            try:
                payload = open_envelope(
                    key, request[f"envelope-{i}"], envelope_context(context, client)
                )
                row = np.frombuffer(payload, dtype="<u8").astype(np.uint64)
                opened[i] = row.shape == (d,)
            except EnvelopeError:
                row = None
            rows.append(row if opened[i] else np.zeros(d, dtype=np.uint64))
        try:
            dealer = dealer_share(
                unpack(open_envelope(key, request["dealer"], dealer_context(context)))
            )
        except (EnvelopeError, ChannelError) as exc:
            channel.send({"error": f"S2 could not open the dealer's randomness: {exc}"})
            return
        channel.send({"opened": opened})
        generator = torch.Generator().manual_seed(int(request["rule-seed"]))
        rule = distance_rule(
            request["rule"], len(clients), int(request["num-byzantine"]), generator
        )
        x = np.stack(rows) if rows else np.zeros((0, d), dtype=np.uint64)
        channel.exchange(
            server_round(x, dealer, False, int(request["bits"]), rule, opened), leads=False
        )

    return handle
