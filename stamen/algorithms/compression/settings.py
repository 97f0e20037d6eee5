"""The run-config keys of communication compression, checked before any round runs:
``uplink``, the compression of each client's update (``"none"``, or e.g.
``"ef | random-block(ratio=0.01)"``), and ``downlink``, of the change of the global model the
server sends (``ef``: the server's own error feedback). Strategies whose messages carry
something else than one model (secure shares, Mime's steps, PowerSGD's factors; FedDF with
several architectures, for the downlink) refuse them. Strategy ``powersgd``, the two-phase
linear form of PowerSGD, takes ``powersgd-rank`` and ``powersgd-feedback`` (error feedback at
the clients)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from stamen.algorithms.compression.pipeline import Compression, parse_compression
from stamen.errors import ConfigError
from stamen.sections import Section

# strategies whose messages carry another thing than one model: their replies (uplink), the
# train messages (downlink)
NO_UPLINK = ("mime", "mimelite", "secure", "powersgd")
NO_DOWNLINK = ("mime", "mimelite", "secure")


@dataclass(frozen=True)
class CompressionSettings(Section):
    uplink: str = "none"
    uplink_warmup: int = 0  # rounds whose updates travel dense before compression starts
    downlink: str = "none"
    powersgd_rank: int = 2
    powersgd_feedback: bool = True

    POSITIVE = ("powersgd_rank",)
    NON_NEGATIVE = ("uplink_warmup",)
    STRATEGIES = ("powersgd",)

    def check(self) -> None:
        checks = (
            ("uplink", uplink_of(self), NO_UPLINK),
            ("downlink", downlink_of(self), NO_DOWNLINK),
        )
        for key, compression, refusing in checks:
            if compression is not None and self.strategy in refusing:
                others = ", ".join(refusing)
                raise ConfigError(
                    f"{key} compression is not supported by strategy {self.strategy}: set "
                    f'{key} = "none" or a strategy other than {others}'
                )
        if downlink_of(self) is not None and self.client_models:
            raise ConfigError("downlink compression needs one architecture: leave client-models")


def uplink_of(settings: CompressionSettings, server_round: int | None = None) -> Compression | None:
    """The clients' compression of their updates (None: they send their models), in
    ``server_round`` when given: none in the first ``uplink-warmup`` rounds (Eghlidi & Jaggi
    train a few rounds dense first)."""
    if server_round is not None and server_round <= settings.uplink_warmup:
        return None
    return _parsed(settings.uplink)


def downlink_of(settings: CompressionSettings) -> Compression | None:
    """The server's compression of the model change it sends (None: the model itself)."""
    return _parsed(settings.downlink)


@functools.lru_cache(maxsize=16)
def _parsed(spec: str) -> Compression | None:
    return parse_compression(spec)
