"""One ``ArrayRecord`` holding a model per architecture: each one's arrays under
``"<architecture>/<key>"`` (FedDF, Lin et al., arXiv 2006.07242, keeps one student per
architecture); with one architecture, its keys are the model's own, as for every other
strategy."""

from __future__ import annotations

from flwr.app import ArrayRecord

SEPARATOR = "/"


def join_models(models: dict[str, ArrayRecord]) -> ArrayRecord:
    """One record of several architectures' arrays (keys prefixed when more than one)."""
    if len(models) == 1:
        return next(iter(models.values()))
    return ArrayRecord(
        {
            f"{name}{SEPARATOR}{key}": arrays[key]
            for name, arrays in models.items()
            for key in arrays
        }
    )


def split_models(record: ArrayRecord, names: list[str] | tuple[str, ...]) -> dict[str, ArrayRecord]:
    """The inverse of ``join_models`` for the architectures ``names``."""
    if len(names) == 1:
        return {names[0]: record}
    models: dict[str, dict] = {name: {} for name in names}
    for key in record:
        name, _, inner = key.partition(SEPARATOR)
        models[name][inner] = record[key]
    return {name: ArrayRecord(arrays) for name, arrays in models.items()}
