"""The run configuration: Flower's hyphenated run-config keys, parsed once into a dataclass.

The same keys serve ``flwr run . --run-config "k=v"``, ``stamen run --set k=v`` and
``--config FILE.toml``. Each component states the keys it reads, their defaults and checks in
its own section (``stamen.sections``) next to its code; ``Experiment`` composes the sections
into one frozen dataclass and runs their checks, with one-line errors that name the allowed
values. No string-keyed dict travels further into the code.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from typing import Any

from stamen.algorithms.aggregation.settings import AggregationSettings
from stamen.algorithms.compression.settings import CompressionSettings
from stamen.algorithms.distillation_settings import DistillationSettings
from stamen.algorithms.mime.settings import MimeSettings
from stamen.algorithms.pruning.settings import PruningSettings
from stamen.attacks.settings import AttackSettings
from stamen.datasets.settings import DataSettings
from stamen.errors import ConfigError
from stamen.models.settings import ModelSettings
from stamen.sections import Section, key_of
from stamen.secure.settings import SecureSettings

DEVICES = ("auto", "cpu", "cuda")
BATCH_CLIENTS = ("auto", "on", "off")  # in-process engine: train a round's clients together


@dataclass(frozen=True)
class RunSettings(Section):
    """The keys of every run: rounds and sampling, local training, evaluation, the engine,
    and Flower's own strategies (FedAvg, FedAvgM, FedProx) with their server settings."""

    strategy: str = "fedavg"
    num_server_rounds: int = 30
    fraction_train: float = 1.0
    fraction_evaluate: float = 0.0
    min_available_clients: int = 2
    min_replies: int = 1
    server_lr: float = 1.0
    server_momentum: float = 0.0
    proximal_mu: float = 0.01
    local_epochs: int = 1
    local_steps: int = 10
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    eval_every: int = 5
    eval_samples: int = 0
    eval_batch_size: int = 1000
    client_cpus: float = 1
    client_gpus: float = 0.0
    ray_address: str = ""
    batch_clients: str = "auto"
    round_timeout: float = 3600.0
    out_dir: str = ""
    resume: bool = False
    node_state_dir: str = ""

    POSITIVE = ("num_server_rounds", "batch_size", "eval_every", "eval_batch_size", "min_replies")
    NON_NEGATIVE = (
        "local_epochs",
        "local_steps",
        "lr",
        "momentum",
        "weight_decay",
        "eval_samples",
        "server_momentum",
        "proximal_mu",
        "client_gpus",
        "min_available_clients",
        "seed",
    )
    UNIT_INTERVAL = ("fraction_train", "fraction_evaluate")
    STRATEGIES = ("fedavg", "fedavgm", "fedprox")

    def check(self) -> None:
        if self.local_epochs == 0 and self.local_steps == 0:
            raise ConfigError("set local-epochs or local-steps (> 0); local-steps > 0 wins")
        if self.fraction_train == 0:
            raise ConfigError("fraction-train must be > 0")
        if self.client_cpus <= 0:
            raise ConfigError(f"client-cpus must be > 0, got {self.client_cpus}")
        if self.batch_clients not in BATCH_CLIENTS:
            allowed = ", ".join(BATCH_CLIENTS)
            raise ConfigError(f"batch-clients must be one of {allowed}, got {self.batch_clients!r}")
        if self.round_timeout <= 0:
            raise ConfigError(f"round-timeout must be > 0 seconds, got {self.round_timeout}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(
                f"unknown device {self.device!r}: expected one of {', '.join(DEVICES)}, cuda:N"
            )


@dataclass(frozen=True)
class Experiment(
    PruningSettings,
    CompressionSettings,
    SecureSettings,
    DistillationSettings,
    MimeSettings,
    AggregationSettings,
    AttackSettings,
    ModelSettings,
    DataSettings,
    RunSettings,
):
    """One run's settings; field ``num_clients`` is run-config key ``num-clients``.

    A new component adds its section to the bases; its keys, defaults and checks stay in
    its own file."""

    def __post_init__(self) -> None:
        _check_types(self)
        self._apply_strategy_defaults()
        composed = sections()
        for section in composed:
            _check_ranges(self, section)
        for section in reversed(composed):  # RunSettings first, SecureSettings last
            if "check" in vars(section):
                section.check(self)

    def _apply_strategy_defaults(self) -> None:
        """Keys the strategy needs (its section's ``STRATEGY_DEFAULTS``) that the run left at
        their global default take the strategy's value; a value the user chose is kept."""
        if self.strategy not in strategy_names():
            raise ConfigError(
                f"unknown strategy {self.strategy!r}: expected one of {', '.join(strategy_names())}"
            )
        for section in sections():
            for key, value in section.STRATEGY_DEFAULTS.get(self.strategy, {}).items():
                name = key.replace("-", "_")
                if getattr(self, name) == _FIELD_DEFAULTS[name]:
                    object.__setattr__(self, name, value)  # still in construction

    @property
    def name(self) -> str:
        """A short name for folders: dataset, model, strategy."""
        return f"{self.dataset.split(':')[-1].split('/')[-1]}-{self.model}-{self.strategy}"

    def to_run_config(self) -> dict[str, Any]:
        """The Flower run config (hyphenated keys) of this experiment."""
        return {key_of(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> Experiment:
        """Build from Flower's run config; unknown keys are an error naming the known ones."""
        known = {key_of(f.name): f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(run_config) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}: expected one of {', '.join(sorted(known))}"
            )
        return cls(**{known[key]: value for key, value in run_config.items()})

    def replace(self, **changes: Any) -> Experiment:
        return dataclasses.replace(self, **changes)


_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Experiment)}


def sections() -> list[type[Section]]:
    """The sections composed into ``Experiment``, in method resolution order."""
    return [
        c for c in Experiment.__mro__ if issubclass(c, Section) and c not in (Section, Experiment)
    ]


def strategy_names() -> list[str]:
    """Every strategy a section provides."""
    return sorted(name for section in sections() for name in section.STRATEGIES)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` with a TOML value; bare words are strings (``model=cnn``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def _check_ranges(experiment: Experiment, section: type[Section]) -> None:
    for name in section.POSITIVE:
        if getattr(experiment, name) < 1:
            raise ConfigError(f"{key_of(name)} must be at least 1, got {getattr(experiment, name)}")
    for name in section.NON_NEGATIVE:
        if getattr(experiment, name) < 0:
            raise ConfigError(f"{key_of(name)} must be >= 0, got {getattr(experiment, name)}")
    for name in section.UNIT_INTERVAL:
        if not 0 <= getattr(experiment, name) <= 1:
            raise ConfigError(f"{key_of(name)} must be in [0, 1], got {getattr(experiment, name)}")


def _check_types(experiment: Experiment) -> None:
    for field in dataclasses.fields(experiment):
        value = getattr(experiment, field.name)
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[field.type]
        if (isinstance(value, bool) and field.type != "bool") or not isinstance(value, expected):
            raise ConfigError(f"{key_of(field.name)} must be {field.type}, got {value!r}")
