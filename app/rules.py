"""Settings turned into the pure models' configuration (:class:`models.setup.Setup`): the worker
and the CLI's offline commands both build it here, so an evaluation runs the rules the worker
would run with the same environment."""

from __future__ import annotations

from app.action_catalog import for_channels, load_file
from app.settings import Settings
from models.churn import LabelRules
from models.contact import ContactRules
from models.decision import RulePolicy
from models.lifecycle import LifecyclePolicy
from models.recommend import RecConfig
from models.setup import ChurnSpec, SegmentSpec, Setup, SimilaritySpec
from models.similarity import Blend
from models.user_step import StepConfig
from schemas.action_catalog import ActionCatalog
from schemas.validate import ValidationPolicy
from schemas.vocabulary import DAY


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
    if d.policy != "learned":
        return None
    return for_channels(
        load_file(d.catalog_path), settings.ingress.channels, str(d.catalog_path or "actions.yaml")
    )


def contact_rules(settings: Settings) -> ContactRules:
    """The contact policy."""
    c, day = settings.contact, DAY
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
    c, day = settings.churn, DAY
    return LabelRules(
        horizon_s=c.horizon_days * day,
        value_horizon_s=c.value_horizon_days * day,
        sample_every_s=c.sample_every_days * day,
        active_window_s=c.active_window_days * day,
    )


def validation_policy(settings: Settings) -> ValidationPolicy:
    """What ingress validation accepts: the configured channels, size limit and currencies."""
    return ValidationPolicy(
        channels=frozenset(settings.ingress.channels),
        max_bytes=settings.ingress.max_message_bytes,
        base_currency=settings.ingress.base_currency,
        fx_rates=dict(settings.ingress.fx_rates),
    )


def setup(settings: Settings) -> Setup:
    """The engine's and the models' configuration: what the worker runs, and what the CLI hands
    to the offline lab."""
    t, seg, c, s = settings.time, settings.segments, settings.churn, settings.similarity
    return Setup(
        step_config(settings),
        lateness_s=t.lateness_s,
        due_bucket_s=t.due_bucket_s,
        watermark_support=t.watermark_support,
        max_future_skew_s=t.max_future_skew_s,
        snapshot_every=seg.snapshot_every,
        segments=SegmentSpec(
            n_segments=seg.n_segments,
            halflife=seg.halflife,
            warmup=seg.warmup,
            freeze_scaler_after=seg.freeze_scaler_after,
            seed=seg.seed,
        ),
        churn=ChurnSpec(c.classifier, calibration_lr=c.calibration_lr, drift_delta=c.drift_delta),
        similarity=SimilaritySpec(
            fan_out=s.fan_out,
            half_life_days=s.half_life_days,
            shrinkage=s.shrinkage,
            embedding_factors=s.embedding_factors,
            embedding_context=s.embedding_context,
            embedding_negatives=s.embedding_negatives,
        ),
        blend=Blend(cooc=1.0, content=s.content_weight, embedding=s.embedding_weight),
        rec=RecConfig(
            k=s.top_k,
            history=min(s.history, s.fan_out),
            half_life_days=s.history_half_life_days,
            neighbours=s.neighbours,
            popular=s.popular,
            max_per_series=s.max_per_series,
        ),
        erase_salt=settings.erase.salt.get_secret_value().encode(),
    )
