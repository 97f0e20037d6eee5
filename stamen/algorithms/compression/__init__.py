"""Communication compression: compressors of one tensor (``COMPRESSORS``), composed with the
wrappers ``ef`` and ``unbiased`` by a spec string (``parse_compression``), applied to a flat
update tensor by tensor. Pure torch; the clients and strategies put the payload on the wire.

Importing this package imports every module in it, which registers every compressor: a new
compressor is one new file.
"""

from stamen.algorithms.compression.base import (
    COMPRESSORS,
    DOWNLINK,
    UPLINK,
    Compressor,
    Draws,
    MalformedPayload,
    Parts,
    RoundDraws,
    Tensors,
    split,
)
from stamen.algorithms.compression.pipeline import Compression, parse_compression
from stamen.registry import import_package_modules

import_package_modules(__name__, __path__)

__all__ = [
    "COMPRESSORS",
    "DOWNLINK",
    "UPLINK",
    "Compression",
    "Compressor",
    "Draws",
    "MalformedPayload",
    "Parts",
    "RoundDraws",
    "Tensors",
    "parse_compression",
    "split",
]
