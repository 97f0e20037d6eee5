"""Character-level LSTM of LEAF's Shakespeare benchmark.

Caldas et al., "LEAF: A Benchmark for Federated Settings", arXiv:1812.01097 (model after
McMahan et al., arXiv:1602.05629): an 8-dimensional character embedding, a two-layer LSTM of
256 units and a linear layer that predicts the next character from the last time step.
With LEAF's 80-character vocabulary it has 819,920 parameters (PyTorch keeps two bias vectors
per LSTM layer; LEAF's TensorFlow cell keeps one, 817,872).
"""

from __future__ import annotations

from torch import Tensor, nn

from stamen.errors import ConfigError

EMBEDDING_DIM = 8
HIDDEN = 256
LAYERS = 2


class CharLSTM(nn.Module):
    """Next-character classifier over a vocabulary of ``vocab_size`` characters."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBEDDING_DIM)
        self.lstm = nn.LSTM(EMBEDDING_DIM, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, vocab_size)`` for int64 character ids ``x`` of shape ``(N, L)``."""
        hidden, _ = self.lstm(self.embedding(x))
        return self.head(hidden[:, -1])


def build_char_lstm(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The LEAF Shakespeare LSTM; the vocabulary size is ``num_classes``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(sequence_length,)``; LEAF uses ``(80,)``.
    num_classes : int
        Vocabulary size, both of the input ids and of the predicted next character.

    Returns
    -------
    torch.nn.Module
        Maps int64 tensors ``(N, sequence_length)`` to logits ``(N, num_classes)``.
    """
    if len(input_shape) != 1:
        raise ConfigError(
            "model 'char-lstm' needs sequences of character ids, input_shape "
            f"(sequence_length,), e.g. (80,); got {tuple(input_shape)}"
        )
    return CharLSTM(num_classes)
