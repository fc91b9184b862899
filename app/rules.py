"""Settings turned into the pure models' configuration: the worker and ``nba evaluate`` both call
these, so an evaluation runs the rules the worker would run with the same environment."""

from __future__ import annotations

from app.settings import Settings
from models.decision import RulePolicy
from models.lifecycle import LifecyclePolicy
from models.segmentation import Segmenter
from models.user_step import StepConfig


def step_config(settings: Settings) -> StepConfig:
    """The per-user rules."""
    t, seg, r = settings.time, settings.segments, settings.rule
    return StepConfig(
        dedupe_window_s=t.dedupe_window_s,
        backfill_max_age_s=t.backfill_max_age_s,
        send_enabled=not settings.worker.no_send,
        rule=RulePolicy(r.views_threshold, r.cooldown_s, r.expiry_s),
        lifecycle=LifecyclePolicy(**settings.lifecycle.model_dump()),
        train_interval_s=seg.train_interval_s,
        train_min_events=seg.train_min_events,
    )


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
