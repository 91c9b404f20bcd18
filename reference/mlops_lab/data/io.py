"""Read and write frames by file extension (.parquet or .csv), and JSON state files, atomically.

python -c "from mlops_lab.data.io import read_frame; print(read_frame('var/data/train.parquet').shape)"
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_lab.errors import InvalidValue, MissingFile

if TYPE_CHECKING:  # pandas is imported where a frame is read: state files need no pandas (0.3 s)
    import pandas as pd

SUFFIXES = (".parquet", ".csv")


def check_suffix(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise InvalidValue(f"{path}: use a .parquet or .csv file (got {path.suffix or 'no extension'!r})")


def read_frame(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    check_suffix(path)
    if not path.exists():
        raise MissingFile(f"{path}: no such file")
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"card_id": str})


def write_frame(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename: a crash leaves the
    old file or the new one, never half of one (state files the lab resumes from depend on it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=indent, default=str)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --8<-- [start:fingerprint]
def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a frame (column names, dtypes and values), independent of file format."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(repr([(c, str(t)) for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


# --8<-- [end:fingerprint]
