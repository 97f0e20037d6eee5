"""The run-config key of communication compression: ``uplink``, the compression of each
client's update (``"none"``, or e.g. ``"ef | random-block(ratio=0.01)"``), checked before any
round runs. Strategies whose clients reply with something else than a model (secure shares,
Mime's steps) refuse it."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from stamen.algorithms.compression.pipeline import Compression, parse_compression
from stamen.errors import ConfigError
from stamen.sections import Section

# strategies whose train reply is another thing than the client's model
UNCOMPRESSED_STRATEGIES = ("mime", "mimelite", "secure")


@dataclass(frozen=True)
class CompressionSettings(Section):
    uplink: str = "none"

    def check(self) -> None:
        if uplink_of(self) is not None and self.strategy in UNCOMPRESSED_STRATEGIES:
            raise ConfigError(
                f"uplink compression is not supported by strategy {self.strategy}: set "
                f'uplink = "none" or a strategy other than {", ".join(UNCOMPRESSED_STRATEGIES)}'
            )


def uplink_of(settings: CompressionSettings) -> Compression | None:
    """The clients' compression of their updates (None: they send their models)."""
    return _parsed(settings.uplink)


@functools.lru_cache(maxsize=16)
def _parsed(spec: str) -> Compression | None:
    return parse_compression(spec)
