"""The run configuration: Flower's hyphenated run-config keys, parsed once into a dataclass.

The same keys serve ``flwr run . --run-config "k=v"``, ``stamen run --set k=v`` and
``--config FILE.toml``. They are validated here, in one place, with one-line errors that
name the allowed values; no string-keyed dict travels further into the code.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from typing import Any

import torch

from stamen.attacks import OMNISCIENT, byzantine_clients, create_attack
from stamen.datasets import DATASETS, PARTITIONERS
from stamen.datasets.loading import parse_spec
from stamen.errors import ConfigError
from stamen.models import MODELS
from stamen.models.assignment import parse_client_models
from stamen.secure.rules import distance_rule
from stamen.strategies import STRATEGIES, STRATEGY_DEFAULTS
from stamen.strategies.aggregation import CLIP_SCALINGS
from stamen.strategies.base_optimizers import create_base_optimizer
from stamen.strategies.distill_data import HOLDOUT, NOISE
from stamen.strategies.robust import pipeline_of

MIME_STRATEGIES = ("mime", "mimelite")
DEVICES = ("auto", "cpu", "cuda")
BATCH_CLIENTS = ("auto", "on", "off")  # in-process engine: train a round's clients together
# "same": Byzantine clients get their share by `partition` like everyone; "iid": iid samples.
BYZANTINE_DATA = ("same", "iid")


@dataclass(frozen=True)
class Experiment:
    """One run's settings; field ``num_clients`` is run-config key ``num-clients``."""

    dataset: str = "mnist"
    partition: str = "dirichlet"
    alpha: float = 0.5
    min_partition_size: int = 10
    classes_per_client: int = 2
    num_clients: int = 20
    fraction_train: float = 1.0
    fraction_evaluate: float = 0.0
    min_available_clients: int = 2
    model: str = "cnn"
    strategy: str = "fedavg"
    aggregator: str = "mean"
    attack: str = "none"
    num_byzantine: int = 0
    byzantine_data: str = "same"
    server_lr: float = 1.0
    worker_momentum: float = 0.0
    clip_scaling: str = "none"
    server_momentum: float = 0.0
    proximal_mu: float = 0.01
    base_optimizer: str = "sgdm(beta=0.9)"
    gradient_batches: int = 0
    server_holdout: float = 0.0
    client_models: str = ""
    distill_data: str = "holdout"
    distill_samples: int = 0
    distill_validation: int = 1000
    distill_steps: int = 10_000
    distill_batch_size: int = 128
    distill_lr: float = 1e-3
    distill_temperature: float = 1.0
    distill_eval_every: int = 100
    distill_patience: int = 1000
    distill_drop_weak: bool = False
    distill_clip_norm: float = 5.0
    distill_keep_start: bool = False
    secure_s2: str = ""
    secure_dealer: str = ""
    secure_certs: str = ""
    secure_bits: int = 19
    secure_clip: float = 1.0
    secure_noise: float = 0.0
    num_server_rounds: int = 30
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
    min_replies: int = 1
    out_dir: str = ""
    resume: bool = False
    node_state_dir: str = ""

    def __post_init__(self) -> None:
        _check_types(self)
        self._apply_strategy_defaults()
        positive = (
            "num_clients",
            "num_server_rounds",
            "batch_size",
            "eval_every",
            "eval_batch_size",
            "min_replies",
            "distill_validation",
            "distill_batch_size",
            "distill_eval_every",
            "distill_patience",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{key_of(name)} must be at least 1, got {getattr(self, name)}")
        non_negative = (
            "local_epochs",
            "local_steps",
            "lr",
            "momentum",
            "weight_decay",
            "eval_samples",
            "min_partition_size",
            "server_momentum",
            "proximal_mu",
            "gradient_batches",
            "distill_samples",
            "distill_steps",
            "client_gpus",
            "min_available_clients",
            "num_byzantine",
            "seed",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{key_of(name)} must be >= 0, got {getattr(self, name)}")
        if self.alpha <= 0:
            raise ConfigError(f"alpha must be > 0 (Dirichlet concentration), got {self.alpha}")
        if self.local_epochs == 0 and self.local_steps == 0:
            raise ConfigError("set local-epochs or local-steps (> 0); local-steps > 0 wins")
        for name in ("fraction_train", "fraction_evaluate", "worker_momentum"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{key_of(name)} must be in [0, 1], got {getattr(self, name)}")
        if self.fraction_train == 0:
            raise ConfigError("fraction-train must be > 0")
        if self.client_cpus <= 0:
            raise ConfigError(f"client-cpus must be > 0, got {self.client_cpus}")
        if self.batch_clients not in BATCH_CLIENTS:
            allowed = ", ".join(BATCH_CLIENTS)
            raise ConfigError(f"batch-clients must be one of {allowed}, got {self.batch_clients!r}")
        if self.round_timeout <= 0:
            raise ConfigError(f"round-timeout must be > 0 seconds, got {self.round_timeout}")
        # Each lookup raises a ConfigError naming the registered names.
        MODELS.get(self.model)
        PARTITIONERS.get(self.partition)
        DATASETS.get(parse_spec(self.dataset)[0])
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(
                f"unknown device {self.device!r}: expected one of {', '.join(DEVICES)}, cuda:N"
            )
        self._check_robustness()
        if self.strategy in MIME_STRATEGIES:
            self._check_mime()
        self._check_feddf()
        if self.strategy == "secure":
            self._check_secure()

    def _apply_strategy_defaults(self) -> None:
        """Keys the strategy needs (``STRATEGY_DEFAULTS``) that the run left at their global
        default take the strategy's value; a value the user chose is kept."""
        STRATEGIES.get(self.strategy)  # an unknown name fails here, naming the known ones
        for key, value in STRATEGY_DEFAULTS.get(self.strategy, {}).items():
            name = key.replace("-", "_")
            if getattr(self, name) == _FIELD_DEFAULTS[name]:
                object.__setattr__(self, name, value)  # still in construction

    def _check_secure(self) -> None:
        """A distance-based rule, a sound validity range, and S2 and the dealer together."""
        per_round = max(int(self.num_clients * self.fraction_train), 1)
        distance_rule(self.aggregator, per_round, self.num_byzantine, torch.Generator())
        if not 1 <= self.secure_bits <= 28:
            raise ConfigError(f"secure-bits must be in [1, 28], got {self.secure_bits}")
        for name in ("secure_clip", "secure_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key_of(name)} must be >= 0, got {getattr(self, name)}")
        given = [bool(self.secure_s2), bool(self.secure_dealer), bool(self.secure_certs)]
        if any(given) and not all(given):
            raise ConfigError(
                "set secure-s2, secure-dealer and secure-certs together (or none: a simulation "
                "starts S2 and the dealer itself)"
            )

    def _check_feddf(self) -> None:
        """FedDF's server data, distillation settings and client architectures."""
        for name in ("distill_lr", "distill_temperature"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key_of(name)} must be > 0, got {getattr(self, name)}")
        if self.distill_clip_norm < 0:
            raise ConfigError(
                f"distill-clip-norm must be >= 0 (0: no clipping), got {self.distill_clip_norm}"
            )
        if not 0 <= self.server_holdout < 1:
            raise ConfigError(f"server-holdout must be in [0, 1), got {self.server_holdout}")
        shares = parse_client_models(self.client_models, self.model)
        if self.client_models and self.strategy != "feddf":
            raise ConfigError(f"client-models needs strategy=feddf, not {self.strategy}")
        if self.model not in shares:
            raise ConfigError(
                f"model {self.model!r} must be one of client-models ({', '.join(shares)}): "
                "it is the architecture reported as accuracy"
            )
        if self.strategy != "feddf":
            return
        if self.distill_data not in (HOLDOUT, NOISE):
            try:
                DATASETS.get(parse_spec(self.distill_data)[0])
            except ConfigError as exc:
                raise ConfigError(
                    f"unknown distill-data {self.distill_data!r}: expected {HOLDOUT}, {NOISE} "
                    f"or a data set ({', '.join(DATASETS.names())})"
                ) from exc

    def _check_mime(self) -> None:
        """Mime's base optimizer parses; settings it does not use are refused, not ignored."""
        create_base_optimizer(self.base_optimizer)
        if self.weight_decay:
            raise ConfigError(f"weight-decay is not supported by {self.strategy}: set it to 0")
        if self.attack != "none":
            raise ConfigError(f"attack {self.attack!r} needs strategy=robust, not {self.strategy}")

    def _check_robustness(self) -> None:
        """Attack, Byzantine count and aggregation pipeline fit together (before any run)."""
        if self.attack != "none":
            attack = create_attack(self.attack)
            if self.num_byzantine == 0:
                raise ConfigError(f"attack {self.attack!r} needs num-byzantine > 0")
            if attack.kind == OMNISCIENT and self.strategy not in ("robust", "secure"):
                raise ConfigError(
                    f"attack {self.attack!r} is simulated server-side: it needs strategy=robust "
                    "or secure"
                )
        byzantine_clients(self.num_clients, self.num_byzantine, self.seed)  # checks f < n/2
        if self.byzantine_data not in BYZANTINE_DATA:
            raise ConfigError(
                f"unknown byzantine-data {self.byzantine_data!r}: expected one of "
                f"{', '.join(BYZANTINE_DATA)}"
            )
        if self.clip_scaling not in CLIP_SCALINGS:
            raise ConfigError(
                f"unknown clip-scaling {self.clip_scaling!r}: expected one of "
                f"{', '.join(CLIP_SCALINGS)}"
            )
        if self.clip_scaling != "none" and self.worker_momentum == 1:
            raise ConfigError("clip-scaling needs worker-momentum < 1 (it divides by 1 - beta)")
        if self.strategy == "robust":
            pipeline_of(self)

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


def key_of(field_name: str) -> str:
    """Run-config key of a dataclass field: ``num_clients`` -> ``num-clients``."""
    return field_name.replace("_", "-")


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


def _check_types(experiment: Experiment) -> None:
    for field in dataclasses.fields(experiment):
        value = getattr(experiment, field.name)
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[field.type]
        if (isinstance(value, bool) and field.type != "bool") or not isinstance(value, expected):
            raise ConfigError(f"{key_of(field.name)} must be {field.type}, got {value!r}")
