"""The run-config keys of the model: the architecture whose accuracy is reported, and the
clients' architectures where they differ (``client-models``, FedDF)."""

from __future__ import annotations

from dataclasses import dataclass

from stamen.errors import ConfigError
from stamen.models import MODELS
from stamen.models.assignment import parse_client_models
from stamen.sections import Section


@dataclass(frozen=True)
class ModelSettings(Section):
    model: str = "cnn"
    client_models: str = ""

    def check(self) -> None:
        MODELS.get(self.model)  # an unknown name fails, naming the known ones
        shares = parse_client_models(self.client_models, self.model)
        if self.model not in shares:
            raise ConfigError(
                f"model {self.model!r} must be one of client-models ({', '.join(shares)}): "
                "it is the architecture reported as accuracy"
            )
