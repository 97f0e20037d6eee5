"""Client architectures (``client-models``) and the one record of several models."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord

from stamen.errors import ConfigError
from stamen.messages.multi_model import join_models, split_models
from stamen.models import create_model
from stamen.models.assignment import client_architectures, parse_client_models


def test_parse_and_assign_contiguous_blocks_that_add_up():
    shares = parse_client_models("cnn:0.5, mlp:0.5", "cnn")
    assert shares == {"cnn": 0.5, "mlp": 0.5}
    assert client_architectures(shares, 4) == ("cnn", "cnn", "mlp", "mlp")
    thirds = parse_client_models("mlp:0.34, logreg:0.33, cnn:0.33", "mlp")
    names = client_architectures(thirds, 20)
    assert len(names) == 20 and [names.count(n) for n in thirds] == [7, 7, 6]


def test_empty_means_every_client_trains_the_run_model():
    assert parse_client_models("", "mlp") == {"mlp": 1.0}
    assert client_architectures({"mlp": 1.0}, 3) == ("mlp",) * 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("nope:1", "unknown model 'nope'"),
        ("mlp:0.5, cnn", "'model:share'"),
        ("mlp:0.5, mlp:0.5", "distinct"),
        ("mlp:-1, cnn:2", "shares > 0"),
        ("mlp:0.5, cnn:0.4", "add up to 1"),
    ],
)
def test_bad_client_models_are_refused_in_one_line(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_client_models(text, "mlp")


def test_join_and_split_round_trip_without_mixing_shapes():
    models = {
        "mlp": ArrayRecord(create_model("mlp", (5,), 3, seed=0).state_dict()),
        "logreg": ArrayRecord(create_model("logreg", (5,), 3, seed=0).state_dict()),
    }
    joined = join_models(models)
    assert all(key.split("/")[0] in models for key in joined)
    back = split_models(joined, ["mlp", "logreg"])
    for name, record in models.items():
        assert list(back[name]) == list(record)
        for key in record:
            assert np.array_equal(back[name][key].numpy(), record[key].numpy())
    # one architecture: the model's own keys, untouched
    assert join_models({"mlp": models["mlp"]}) is models["mlp"]
    assert split_models(models["mlp"], ["mlp"])["mlp"] is models["mlp"]
