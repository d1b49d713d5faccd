"""The router file: one versioned JSON document, arrays inside as base64 of zlib'd bytes.

No pickle, so a router file is safe to open and readable without ims_kit::

    {"format": "ims_kit.router", "version": 1,
     "features": {...FeatureConfig...},
     "model": {"kind": "logistic_pair", "block_weights": [w_words, w_chars],
               "intercepts": {"strong": b, "weak": b}, "documents": n, "min_df": k,
               "df": ARRAY uint32 (prompts containing each bucket; IDF = ln((1+n)/(1+df)) + 1,
                     and 0 where df < min_df),
               "weights": {"strong": ARRAY int8, "weak": ARRAY int8},
               "scales": {"strong": s, "weak": s},          # bucket weight = int8 * scale
               "surface_mean": [...], "surface_std": [...],  # one per surface measure
               "surface_weights": {"strong": [...], "weak": [...]}},
     "calibration": {...Calibration.to_dict()...},
     "seen": ARRAY uint32,   # crc32 of each training prompt, sorted (optional)
     "metadata": {...what it was trained on, its out-of-fold figures, attribution...}}

where ARRAY is ``{"dtype": "<u4", "shape": [n], "zlib_base64": "..."}`` (little-endian).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ims_kit.errors import InvalidInputError

FORMAT = "ims_kit.router"
VERSION = 1
_DTYPES = {"<u4", "<i8", "|i1", "<f4", "<f8"}


def pack(array: np.ndarray) -> dict[str, Any]:
    """A 1-D array as JSON: its little-endian dtype, shape and zlib'd bytes in base64."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    raw = array.astype(dtype, copy=False).tobytes()
    return {
        "dtype": dtype.str,
        "shape": list(array.shape),
        "zlib_base64": base64.b64encode(zlib.compress(raw, 9)).decode("ascii"),
    }


def unpack(data: Any, what: str) -> np.ndarray:
    """The array ``pack`` wrote; a damaged or foreign entry is an InvalidInputError."""
    try:
        dtype, shape = data["dtype"], [int(n) for n in data["shape"]]
        if dtype not in _DTYPES:
            raise ValueError(f"dtype {dtype!r}")
        raw = zlib.decompress(base64.b64decode(data["zlib_base64"], validate=True))
        return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
    except (KeyError, TypeError, ValueError, zlib.error, binascii.Error) as exc:
        raise InvalidInputError(f"router file: the array {what} is damaged ({exc})") from None


def check_metadata(metadata: Any) -> None:
    """Metadata must be a JSON object of plain values (a router file stores it as JSON)."""
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInputError(f"metadata must be a dict with string keys, not {metadata!r}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must hold JSON values only ({exc})") from None


def _path(path: Any) -> Path:
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise InvalidInputError(f"a router file is named by a path, not {path!r}")
    return Path(path)


def write(path: str | Path, document: dict[str, Any]) -> Path:
    """Write the document as compact UTF-8 JSON, with the format and version first, through a
    temporary file renamed over the target (a failed write leaves the old file whole)."""
    path = _path(path)
    check_metadata(document["metadata"])
    body = {"format": FORMAT, "version": VERSION} | document
    text = json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n"
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder: name the router file to write")
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def read(path: str | Path) -> dict[str, Any]:
    """The document of a router file, after checking that it is one this version can read."""
    path = _path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder, not a router file")
    if not path.exists():
        raise InvalidInputError(f"no router file at {path}")
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInputError(f"{path} is not a router file (not JSON)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not an ims_kit router file (no format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise InvalidInputError(
            f"{path} is a router file of version {document.get('version')!r}; this ims_kit"
            f" reads version {VERSION}: retrain it with `ims route train`"
        )
    for key in ("features", "model", "calibration", "metadata"):
        if not isinstance(document.get(key), dict):
            raise InvalidInputError(f"{path}: the router file has no {key!r} section")
    return document
