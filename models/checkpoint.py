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

import dataclasses
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import orjson


def snapshot_format(model: Any) -> int:
    """The layout version of a model class's pickled state (``SNAPSHOT_FORMAT``, default 1).

    A class bumps it whenever its state changes in a way an older snapshot cannot fill in (a
    field added to a config dataclass with a default needs no bump: :func:`additive_setstate`).
    """
    return int(getattr(type(model), "SNAPSHOT_FORMAT", 1))


def encode(model: Any, header: dict[str, Any]) -> bytes:
    """The snapshot of ``model``; the header gains its ``format`` (:func:`snapshot_format`)."""
    header = {**header, "format": snapshot_format(model)}
    return orjson.dumps(header) + b"\n" + pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def compatible(header: Mapping[str, Any], model: Any) -> bool:
    """Whether a decoded snapshot was written with the state layout this code reads.

    >>> from models.segmentation import Segmenter
    >>> header, model = decode(encode(Segmenter(), {"model": "segmentation"}))
    >>> compatible(header, model), compatible({**header, "format": 0}, model)
    (True, False)
    """
    return int(header.get("format", 1)) == snapshot_format(model)


def decode_header(blob: bytes) -> dict[str, Any]:
    header: dict[str, Any] = orjson.loads(blob[: blob.index(b"\n")])
    return header


def decode(blob: bytes) -> tuple[dict[str, Any], Any]:
    cut = blob.index(b"\n")
    return orjson.loads(blob[:cut]), pickle.loads(blob[cut + 1 :])


def additive_setstate(self: Any, state: Sequence[Any]) -> None:
    """``__setstate__`` for a frozen, slotted dataclass carried in snapshots, whose fields only
    ever grow at the end, with defaults: a snapshot written before a field existed restores with
    that field's default (the generated one would leave it unset). Assign it in the class body.

    >>> @dataclasses.dataclass(frozen=True, slots=True)
    ... class Weights:
    ...     a: float = 1.0
    ...     b: float = 0.0  # added after snapshots were written
    ...     __setstate__ = additive_setstate
    >>> old = Weights.__new__(Weights)
    >>> old.__setstate__([2.0])  # the state a snapshot with only ``a`` carries
    >>> old
    Weights(a=2.0, b=0.0)
    """
    fields = dataclasses.fields(self)
    for field, value in zip(fields, state, strict=False):
        object.__setattr__(self, field.name, value)
    for field in fields[len(state) :]:
        factory = field.default_factory
        object.__setattr__(self, field.name, field.default if factory is dataclasses.MISSING else factory())


def copy(model: Any) -> Any:
    """A private deep copy of a model, exactly as a snapshot restores it (a pickle round trip)."""
    return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
