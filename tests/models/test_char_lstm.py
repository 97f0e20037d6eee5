"""LEAF's Shakespeare character LSTM."""

from __future__ import annotations

import pytest
import torch

from stamen.errors import ConfigError
from stamen.models import create_model


def test_parameter_count_for_leaf_vocabulary() -> None:
    model = create_model("char-lstm", (80,), 80, seed=0)
    embedding = 80 * 8
    lstm1 = 4 * 256 * (8 + 256) + 2 * 4 * 256  # PyTorch keeps b_ih and b_hh
    lstm2 = 4 * 256 * (256 + 256) + 2 * 4 * 256
    head = 256 * 80 + 80
    assert sum(p.numel() for p in model.parameters()) == embedding + lstm1 + lstm2 + head == 819_920


def test_architecture() -> None:
    model = create_model("char-lstm", (80,), 53, seed=0)
    assert model.embedding.num_embeddings == 53 and model.embedding.embedding_dim == 8
    assert model.lstm.num_layers == 2 and model.lstm.hidden_size == 256
    assert model.head.out_features == 53


def test_prediction_reads_the_whole_sequence_up_to_the_last_step() -> None:
    model = create_model("char-lstm", (80,), 80, seed=0).eval()
    x = torch.randint(80, (1, 80), generator=torch.Generator().manual_seed(0))
    last, first = x.clone(), x.clone()
    last[0, -1] = (x[0, -1] + 1) % 80
    first[0, 0] = (x[0, 0] + 1) % 80
    with torch.no_grad():
        base = model(x)
        assert not torch.allclose(base, model(last))
        # An untrained LSTM forgets fast: the first token still matters, just very little.
        assert not torch.equal(base, model(first))
        # Logits are those of the final step: a prefix run gives the step-k prediction.
        full, _ = model.lstm(model.embedding(x))
        torch.testing.assert_close(model(x[:, :40]), model.head(full[:, 39]))


@pytest.mark.parametrize("shape", [(1, 80), (28, 28), (1, 28, 28)])
def test_non_sequence_shapes_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="needs sequences"):
        create_model("char-lstm", shape, 80, seed=0)
