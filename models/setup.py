"""The configuration the engine, the models and the lab need, as plain records.

The service builds one :class:`Setup` from its settings (:func:`app.rules.setup`) and passes it
down; the offline lab receives one from the CLI (or a test) and never reads the environment. The
``new_*`` methods build fresh models exactly as the worker's learner does, so an evaluation runs
the models the worker would run under the same settings.

Examples
--------
>>> s = Setup(
...     StepConfig(), lateness_s=300.0, due_bucket_s=3600.0, snapshot_every=1_000,
...     segments=SegmentSpec(5, halflife=0.01, warmup=500, freeze_scaler_after=None, seed=42),
...     churn=ChurnSpec("hoeffding", calibration_lr=0.02, drift_delta=0.002),
...     similarity=SimilaritySpec(20, 30.0, 5.0, embedding_factors=16, embedding_context=5,
...                               embedding_negatives=2),
... )
>>> s.new_segmenter().n_segments
5
>>> type(s.new_churn().classifier).__name__
'HoeffdingAdaptiveTreeClassifier'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import tree

from models.churn import ChurnModel, ValueModel
from models.embedding import ItemEmbedding
from models.engine import EngineConfig
from models.recommend import RecConfig, Recommender
from models.segmentation import Segmenter
from models.similarity import Blend, CoOccurrence
from models.uplift import UpliftModel
from models.user_step import StepConfig
from schemas.action_catalog import ActionCatalog


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """The segmentation model's constructor arguments."""

    n_segments: int
    halflife: float
    warmup: int
    freeze_scaler_after: int | None
    seed: int


@dataclass(frozen=True, slots=True)
class ChurnSpec:
    """The churn model's: ``classifier`` is ``"hoeffding"`` (an adaptive Hoeffding tree, seeded)
    or ``"logistic"`` (the model's default scaled logistic regression)."""

    classifier: str
    calibration_lr: float
    drift_delta: float


@dataclass(frozen=True, slots=True)
class SimilaritySpec:
    """The similarity model's learned parts (co-occurrence and item embedding)."""

    fan_out: int
    half_life_days: float
    shrinkage: float
    embedding_factors: int
    embedding_context: int
    embedding_negatives: int


@dataclass(frozen=True, slots=True)
class Setup:
    """Everything per-user and per-model that a deployment configures (clock: event time)."""

    step: StepConfig
    lateness_s: float
    """How far behind a partition's event-time watermark an event may arrive and still apply."""
    due_bucket_s: float
    """The granularity of the due-time index (event time)."""
    snapshot_every: int
    """Training samples between two model snapshots."""
    segments: SegmentSpec
    churn: ChurnSpec
    similarity: SimilaritySpec
    blend: Blend = field(default_factory=Blend)
    rec: RecConfig = field(default_factory=RecConfig)
    erase_salt: bytes = field(default=b"", repr=False)
    """Key of the erased users' hashed suppression list."""
    watermark_support: int = 3
    """Event times needed before a partition's watermark moves (:mod:`models.clock`)."""
    max_future_skew_s: float = 600.0
    """How far after its record timestamp an ingress event may be dated."""

    def engine_config(self, step: StepConfig | None = None, *, publish: bool = True) -> EngineConfig:
        """The engine's configuration (``step``: a policy in force other than ``self.step``)."""
        return EngineConfig(
            step=step or self.step,
            lateness_s=self.lateness_s,
            due_bucket_s=self.due_bucket_s,
            erase_salt=self.erase_salt,
            publish=publish,
            watermark_support=self.watermark_support,
            max_future_skew_s=self.max_future_skew_s,
        )

    def new_segmenter(self) -> Segmenter:
        s = self.segments
        return Segmenter(
            n_segments=s.n_segments,
            halflife=s.halflife,
            warmup=s.warmup,
            freeze_scaler_after=s.freeze_scaler_after,
            seed=s.seed,
        )

    def new_churn(self) -> ChurnModel:
        c = self.churn
        classifier = tree.HoeffdingAdaptiveTreeClassifier(seed=42) if c.classifier == "hoeffding" else None
        return ChurnModel(classifier, calibration_lr=c.calibration_lr, drift_delta=c.drift_delta)

    def new_value(self) -> ValueModel:
        return ValueModel()

    def new_recommender(self) -> Recommender:
        s = self.similarity
        return Recommender(
            CoOccurrence(fan_out=s.fan_out, half_life_days=s.half_life_days, shrinkage=s.shrinkage),
            embedding=ItemEmbedding(
                n_factors=s.embedding_factors, context=s.embedding_context, negatives=s.embedding_negatives
            ),
        ).serve_with(self.blend, self.rec)

    @staticmethod
    def new_uplift(actions: ActionCatalog) -> UpliftModel:
        """A fresh uplift model with the catalog's prior."""
        return UpliftModel(prior_uplift=actions.prior_uplift, prior_weight=actions.prior_weight)

    def serve(self, name: str, model: Any) -> Any:
        """What a process applies to every snapshot it loads: a similarity model is served with
        this setup's blend and recommendation config (they change no learned state, so a new
        value takes effect at the next start, not only for a fresh model)."""
        return model.serve_with(self.blend, self.rec) if isinstance(model, Recommender) else model
