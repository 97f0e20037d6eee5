"""S1's side: connections to S2 and the dealer, and one secure aggregation per round."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stamen.errors import StamenError
from stamen.secure.channel import ChannelError, client_context, connect
from stamen.secure.key_binding import CertifiedKey
from stamen.secure.prg import expand
from stamen.secure.protocol import RoundResult, dealer_share, server_round


class SecureBackendError(StamenError):
    """S2 or the dealer is unreachable or failed: the round cannot be aggregated."""


@dataclass(frozen=True)
class ClientShares:
    client: int  # the id the envelope is bound to
    seed: bytes  # S1's share, compressed
    envelope: bytes  # S2's share, sealed


class SecureBackend:
    """Holds S1's channels to S2 (``s2``) and the dealer (``dealer``), as ``host:port``."""

    def __init__(self, s2: str, dealer: str, certs: Path, timeout: float = 120.0) -> None:
        context = client_context(certs / "s1.pem", certs / "s1.key", certs / "ca.pem")
        self.channels = {}
        for name, address in (("s2", s2), ("dealer", dealer)):
            host, _, port = address.rpartition(":")
            try:
                self.channels[name] = connect((host, int(port)), context, name, timeout)
            except (OSError, ValueError) as exc:
                self.close()
                raise SecureBackendError(f"cannot reach {name} at {address}: {exc}") from exc
        hello = self._call("s2", {"op": "hello"})
        self.s2_key = CertifiedKey(
            hello["public-key"], hello["key-signature"], hello["key-certificate"]
        )

    def aggregate(
        self,
        context: str,
        shares: list[ClientShares],
        d: int,
        bits: int,
        rule: str,
        num_byzantine: int,
        rule_seed: int,
    ) -> RoundResult:
        """The weighted aggregate of the clients' shared updates (S1 reconstructs it).

        ``rule_seed`` seeds S2's ``torch.Generator`` for the rule (bucketing's shuffle),
        as the plaintext robust strategy seeds its own."""
        dealer = self._call(
            "dealer",
            {
                "op": "round",
                "context": context,
                "n": len(shares),
                "d": d,
                "s2-key": self.s2_key.public_key,
                "s2-key-signature": self.s2_key.signature,
                "s2-key-certificate": self.s2_key.certificate,
            },
        )
        if "error" in dealer:
            raise SecureBackendError(dealer["error"])
        request = {
            "op": "round",
            "context": context,
            "clients": [s.client for s in shares],
            "dealer": dealer["s2"],
            "d": d,
            "bits": bits,
            "rule": rule,
            "num-byzantine": num_byzantine,
            "rule-seed": rule_seed,
            **{f"envelope-{i}": s.envelope for i, s in enumerate(shares)},
        }
        self._send("s2", request)
        x = np.stack([expand(s.seed, d) for s in shares])  # while S2 opens its envelopes
        reply = self._receive("s2")
        if "error" in reply:
            raise SecureBackendError(reply["error"])
        mine = dealer_share({k.removeprefix("s1-"): v for k, v in dealer.items() if k != "s2"})
        try:
            return self.channels["s2"].exchange(
                server_round(x, mine, True, bits, usable=np.asarray(reply["opened"])),
                leads=True,
            )
        except (ChannelError, OSError) as exc:
            raise SecureBackendError(f"S2 failed during the round: {exc}") from exc

    def close(self, stop: bool = False) -> None:
        """Close the channels; ``stop`` also ends the services (a simulation's children)."""
        for channel in self.channels.values():
            try:
                if stop:
                    channel.send({"op": "stop"})
            except OSError:
                pass
            channel.close()
        self.channels = {}

    def _call(self, name: str, request: dict) -> dict:
        self._send(name, request)
        return self._receive(name)

    def _send(self, name: str, request: dict) -> None:
        try:
            self.channels[name].send(request)
        except (ChannelError, OSError) as exc:
            raise SecureBackendError(f"{name} failed: {exc}") from exc

    def _receive(self, name: str) -> dict:
        try:
            return self.channels[name].receive()
        except (ChannelError, OSError) as exc:
            raise SecureBackendError(f"{name} failed: {exc}") from exc
