"""Model snapshots as bytes: a JSON header line, then the pickled model.

The header says what the snapshot reflects (``offset``: the last training-stream offset learned,
``n_learned``) and what readers need without unpickling (``version``, ``segments`` with their
descriptions and shares). Snapshots travel on the compacted ``nba.models`` topic, which only the
service writes: unpickling is safe only because of that (restrict the topic's ACLs to the
service's principal).

>>> from models.segmentation import Segmenter
>>> blob = encode(Segmenter(), {"model": "segmentation", "offset": 7})
>>> header, model = decode(blob)
>>> header["offset"], type(model).__name__
(7, 'Segmenter')
"""

from __future__ import annotations

import pickle
from typing import Any

import orjson


def encode(model: Any, header: dict[str, Any]) -> bytes:
    return orjson.dumps(header) + b"\n" + pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def decode_header(blob: bytes) -> dict[str, Any]:
    header: dict[str, Any] = orjson.loads(blob[: blob.index(b"\n")])
    return header


def decode(blob: bytes) -> tuple[dict[str, Any], Any]:
    cut = blob.index(b"\n")
    return orjson.loads(blob[:cut]), pickle.loads(blob[cut + 1 :])


def copy(model: Any) -> Any:
    """A private deep copy of a model, exactly as a snapshot restores it (a pickle round trip)."""
    return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
