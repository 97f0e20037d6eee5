"""Checkpoints are read without running code: the safe encoding of the server's state, and
pickles (old checkpoints, or crafted ones) refused with one line before anything runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord

from stamen.attacks.mimic import MimicState
from stamen.errors import StamenError
from stamen.simulations.checkpoint import (
    FORMAT,
    Checkpoint,
    CheckpointWriter,
    load_checkpoint,
)
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.results import RunRecorder
from stamen.simulations.state_encoding import decode, encode
from stamen.strategies.feddf import FedDFState
from stamen.strategies.mime import MimeState
from stamen.strategies.server_step import RobustState


class RunsCode:
    """Unpickling this runs ``touch marker``, as a malicious checkpoint would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def arrays() -> ArrayRecord:
    return ArrayRecord({"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2])})


def same_arrays(a: ArrayRecord, b: ArrayRecord) -> bool:
    x, y = a.to_torch_state_dict(), b.to_torch_state_dict()
    return list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x)


def test_every_strategy_state_survives_a_checkpoint(tmp_path):
    mimic = MimicState()  # default fields: whatever MimicState holds, it round-trips
    robust = RobustState(arrays(), torch.ones(3), torch.zeros(3), mimic)
    mime = MimeState(arrays(), {"m": torch.ones(4), "step": torch.tensor(2)}, torch.ones(4), 1)
    feddf = FedDFState({"mlp": arrays(), "logreg": arrays()})
    flwr_attributes = {"momentum_vector": [np.ones((2, 2))], "lr": 0.5, "opt": (True, "adam")}
    for state in (robust, mime, feddf, flwr_attributes):
        writer = CheckpointWriter(tmp_path)
        writer.save(Checkpoint(7, arrays(), state))
        writer.close()
        loaded = load_checkpoint(tmp_path)
        assert loaded.round == 7 and same_arrays(loaded.arrays, arrays())
        assert type(loaded.strategy_state) is type(state)
    assert np.array_equal(loaded.strategy_state["momentum_vector"][0], np.ones((2, 2)))
    assert loaded.strategy_state["opt"] == (True, "adam")


def test_dataclass_fields_and_tensors_are_kept_exactly():
    state = RobustState(arrays(), None, torch.tensor([0.1, -2.0]), MimicState())
    back = decode(encode(state))
    assert same_arrays(back.arrays, state.arrays) and back.rule_state is None
    assert torch.equal(back.momentum, state.momentum) and back.attack_state == MimicState()
    mime = decode(encode(MimeState(excluded_gradients=3)))
    assert mime == MimeState(excluded_gradients=3)


def test_only_registered_state_classes_are_encoded_or_rebuilt():
    with pytest.raises(ValueError, match="cannot encode a .*Checkpoint"):
        encode(Checkpoint(1, arrays(), None))
    with pytest.raises(ValueError, match="unknown state class 'Popen'"):
        decode(("dataclass", "Popen", {"args": ["touch", "x"]}))
    with pytest.raises(ValueError, match="MimicState has fields"):
        decode(("dataclass", "MimicState", {"renamed": 1}))


def test_a_pickle_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(StamenError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_a_torch_file_naming_a_function_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    content = {"format": FORMAT, "round": 1, "arrays": RunsCode(marker), "strategy_state": None}
    torch.save(content, tmp_path / "checkpoint.pt")
    with pytest.raises(StamenError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


def test_resuming_from_a_pickle_prints_one_error_line_and_exits_2(tiny_experiment, tmp_path):
    run_dir = tmp_path / "run"
    experiment = tiny_experiment.replace(num_server_rounds=1)
    run_inline(experiment, RunRecorder(run_dir, experiment))
    marker = tmp_path / "code-ran"
    (run_dir / "checkpoint.pt").write_bytes(pickle.dumps(RunsCode(marker)))
    result = subprocess.run(
        [sys.executable, "-m", "stamen", "run", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot be loaded safely" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()
