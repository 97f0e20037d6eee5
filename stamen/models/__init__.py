"""Model zoo: a registry of architectures and a seeded ``create_model``.

Each entry is a factory ``(input_shape, num_classes) -> torch.nn.Module`` that checks the input
shape it is given (one sample, without the batch axis) and raises ``ConfigError`` when the
architecture cannot take it. ``create_model`` runs the factory under a forked torch RNG, so
initialisation depends only on ``seed`` and the caller's global RNG state is left untouched.

Built-in models: ``mlp`` (FedAvg 2NN), ``logreg`` (multinomial logistic regression), ``cnn``
(bucketing MNIST CNN), ``resnet8`` and ``resnet20`` (CIFAR ResNets), ``char-lstm`` (LEAF
Shakespeare). Third-party models register through the entry-point group ``stamen.models``.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from stamen.errors import ConfigError
from stamen.models.char_lstm import build_char_lstm
from stamen.models.cnn import build_cnn
from stamen.models.logreg import build_logreg
from stamen.models.mlp import build_mlp
from stamen.models.resnet import build_resnet8, build_resnet20
from stamen.registry import Registry
from stamen.seeding import torch_seeded


class ModelFactory(Protocol):
    """Builds an initialised model for samples of ``input_shape`` and ``num_classes`` outputs."""

    def __call__(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module: ...


MODELS: Registry[ModelFactory] = Registry("model")
MODELS.register("mlp", build_mlp)
MODELS.register("logreg", build_logreg)
MODELS.register("cnn", build_cnn)
MODELS.register("resnet8", build_resnet8)
MODELS.register("resnet20", build_resnet20)
MODELS.register("char-lstm", build_char_lstm)


def create_model(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """Build the registered model ``name`` with parameters drawn from ``seed``.

    Parameters
    ----------
    name : str
        A registered model name (see ``MODELS.names()``).
    input_shape : tuple of int
        Shape of one sample, without the batch axis, e.g. ``(1, 28, 28)`` or ``(80,)``.
    num_classes : int
        Number of output logits (the vocabulary size for ``char-lstm``).
    seed : int
        Seed of the initialisation; the same seed gives identical parameters.

    Returns
    -------
    torch.nn.Module
        A model mapping a batch of shape ``(N, *input_shape)`` to logits ``(N, num_classes)``.
    """
    factory = MODELS.get(name)
    shape = _check_shape(name, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(
            f"model {name!r}: num_classes must be a positive int, got {num_classes!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"model {name!r}: seed must be an int, got {seed!r}")
    with torch_seeded(seed):  # initialisation runs on the CPU
        return factory(shape, num_classes)


def _check_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ConfigError(
            f"model {name!r}: input_shape must be a non-empty tuple of positive ints "
            f"(one sample, no batch axis), got {input_shape!r}"
        )
    return shape


__all__ = ["MODELS", "ModelFactory", "create_model"]
