"""Settings turned into the pure models' configuration: the worker and ``nba evaluate`` both call
these, so an evaluation runs the rules the worker would run with the same environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from river import tree

from app.action_catalog import load_file
from app.settings import Settings
from models.churn import ChurnModel, LabelRules, ValueModel
from models.contact import ContactRules
from models.decision import RulePolicy
from models.embedding import ItemEmbedding
from models.lifecycle import LifecyclePolicy
from models.recommend import RecConfig, Recommender
from models.segmentation import Segmenter
from models.similarity import Blend, CoOccurrence
from models.uplift import UpliftModel
from models.user_step import StepConfig
from schemas.action_catalog import ActionCatalog


def step_config(settings: Settings) -> StepConfig:
    """The per-user rules."""
    t, seg, r = settings.time, settings.segments, settings.rule
    return StepConfig(
        dedupe_window_s=t.dedupe_window_s,
        backfill_max_age_s=t.backfill_max_age_s,
        send_enabled=not settings.worker.no_send,
        rule=RulePolicy(r.views_threshold, r.expiry_s),
        contact=contact_rules(settings),
        control_share=settings.decision.control_share,
        holdouts=dict(settings.decision.holdout_shares),
        lifecycle=LifecyclePolicy(**settings.lifecycle.model_dump()),
        train_interval_s=seg.train_interval_s,
        train_min_events=seg.train_min_events,
        labels=label_rules(settings),
        history=settings.similarity.fan_out,
        actions=action_catalog(settings),
    )


def action_catalog(settings: Settings) -> ActionCatalog | None:
    """The action catalog of the learned policy (``None``: the foundation rule decides); a malformed
    catalog raises :class:`~schemas.errors.ConfigError` naming its line."""
    d = settings.decision
    return load_file(d.catalog_path) if d.policy == "learned" else None


def contact_rules(settings: Settings) -> ContactRules:
    """The contact policy."""
    c, day = settings.contact, 86_400.0
    return ContactRules(
        max_per_day=c.max_per_day,
        max_per_week=c.max_per_week,
        channel_max_per_day=c.channel_max_per_day,
        channel_max_per_week=c.channel_max_per_week,
        cooldown_s={kind: days * day for kind, days in c.cooldown_days.items()},
        default_cooldown_s=c.default_cooldown_days * day,
        quiet_start_hour=c.quiet_start_hour,
        quiet_end_hour=c.quiet_end_hour,
        default_timezone=c.default_timezone,
        max_ignored=c.max_ignored,
        suppression_s=c.suppression_days * day,
        paused=c.paused,
        late_s=settings.time.backfill_max_age_s + settings.time.lateness_s,
    )


def label_rules(settings: Settings) -> LabelRules:
    """How churn and value snapshots are sampled and labelled."""
    c, day = settings.churn, 86_400.0
    return LabelRules(
        horizon_s=c.horizon_days * day,
        value_horizon_s=c.value_horizon_days * day,
        sample_every_s=c.sample_every_days * day,
        active_window_s=c.active_window_days * day,
    )


def new_churn(settings: Settings) -> ChurnModel:
    """A fresh churn model."""
    c = settings.churn
    classifier = tree.HoeffdingAdaptiveTreeClassifier(seed=42) if c.classifier == "hoeffding" else None
    return ChurnModel(classifier, calibration_lr=c.calibration_lr, drift_delta=c.drift_delta)


def new_uplift(actions: ActionCatalog) -> UpliftModel:
    """A fresh uplift model with the catalog's prior."""
    return UpliftModel(prior_uplift=actions.prior_uplift, prior_weight=actions.prior_weight)


def new_value(settings: Settings) -> ValueModel:
    """A fresh 30-day value model."""
    return ValueModel()


def new_segmenter(settings: Settings) -> Segmenter:
    """A fresh segmentation model."""
    seg = settings.segments
    return Segmenter(
        n_segments=seg.n_segments,
        halflife=seg.halflife,
        warmup=seg.warmup,
        freeze_scaler_after=seg.freeze_scaler_after,
        seed=seg.seed,
    )


def new_recommender(settings: Settings) -> Recommender:
    """A fresh similarity and recommendation model."""
    s = settings.similarity
    return Recommender(
        CoOccurrence(fan_out=s.fan_out, half_life_days=s.half_life_days, shrinkage=s.shrinkage),
        embedding=ItemEmbedding(
            n_factors=s.embedding_factors, context=s.embedding_context, negatives=s.embedding_negatives
        ),
    ).serve_with(*_served(settings))


def _served(settings: Settings) -> tuple[Blend, RecConfig]:
    s = settings.similarity
    blend = Blend(cooc=1.0, content=s.content_weight, embedding=s.embedding_weight)
    config = RecConfig(
        k=s.top_k,
        history=s.fan_out,
        half_life_days=s.history_half_life_days,
        popular=s.popular,
        max_per_series=s.max_per_series,
    )
    return blend, config


def serve_snapshot(settings: Settings) -> Callable[[str, Any], Any]:
    """What a process applies to every snapshot it loads: a similarity model is served with the
    blend and recommendation settings of this process (they change no learned state, so a new
    value takes effect at the next start, not only for a fresh model)."""
    blend, config = _served(settings)

    def prepare(name: str, model: Any) -> Any:
        return model.serve_with(blend, config) if isinstance(model, Recommender) else model

    return prepare
