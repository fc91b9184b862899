"""The app factory: settings in, a ready-to-run Faust app out. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import redis.asyncio as aioredis
from faust.sensors import Sensor

import agents
from agents import metrics
from agents.runtime import JsonTable, LearnerRules, Runtime, TimeRules
from agents.tables import forget_clocks, resync_mirror
from app import web
from app.catalog import CatalogCache
from app.compacted import follow, read_range
from app.faust_fixes import ack_only_processed, drain_before_commit
from app.kafka import client_kwargs
from app.model_store import ModelStore
from app.policy_config import PolicyFollower
from app.redis_mirror import RedisMirror
from app.rules import setup, step_config, validation_policy
from app.security import faust_credentials, redis_options
from app.settings import Settings
from app.topics import TopicNames

log = logging.getLogger(__name__)


class _CommitSensor(Sensor):  # type: ignore[misc]
    def __init__(self, tracker: web.CommitTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.tracker.committed()


def _faust_app(settings: Settings) -> faust.App:
    k, w = settings.kafka, settings.worker
    return faust.App(
        w.app_id,
        broker=k.url,
        broker_credentials=faust_credentials(settings),
        store=w.store,
        datadir=str(w.datadir),
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication,
        topic_disable_leader=True,
        table_standby_replicas=0,
        broker_commit_interval=w.commit_interval_s,
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=w.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        web_host=w.web_host,
        web_port=w.web_port,
        web_bind=w.web_host,
        web_enabled=True,
        # Faust's own pages show raw table values (dedupe records, contact logs, identity links)
        # and the cluster's routing: off. The service's endpoints are in app/web.py.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        autodiscover=False,
    )


async def _forever(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a background reader; if it stops on an error, log it and start it again in 5 s."""
    while True:
        try:
            await run()
        except Exception as exc:
            log.warning("%s stopped (%r); restarting in 5s", name, exc)
            await asyncio.sleep(5)


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    """Build the worker: topics, tables, agents, background tasks and web endpoints."""
    app = _faust_app(settings)
    drain_before_commit(app)
    ack_only_processed(app)
    names = TopicNames.of(settings)
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    partitions = settings.kafka.partitions

    redis_client = aioredis.Redis.from_url(settings.redis.url, **redis_options(settings))
    seg = settings.segments
    mirror = RedisMirror(redis_client, settings.redis.key_prefix, seg.n_segments)
    kafka = client_kwargs(settings)  # one TLS context for every client outside Faust
    catalog = CatalogCache(names.catalog, kafka)
    models = setup(settings)
    store = ModelStore(names.models, kafka, prepare=models.serve)
    t = settings.time

    def table(name: str) -> Any:
        return app.Table(name, default=None, partitions=partitions, key_type=str, value_type=bytes)

    rt = Runtime(
        prefix=settings.kafka.topic_prefix,
        validation=validation_policy(settings),
        time=TimeRules(
            t.dedupe_window_s,
            t.lateness_s,
            t.backfill_max_age_s,
            t.due_bucket_s,
            watermark_support=t.watermark_support,
            max_future_skew_s=t.max_future_skew_s,
        ),
        step=models.step,
        no_send=settings.worker.no_send,
        mirror=mirror,
        # Topics and tables, all in one place.
        ingress=app.topic(*names.all_ingress, **raw),
        consent=app.topic(names.consent, **raw),
        feedback=app.topic(names.feedback, **raw),
        erase=app.topic(names.erase, **raw),
        user_stream=app.topic(names.user_stream, partitions=partitions, **raw),
        dlq=app.topic(names.dlq, **raw),
        dlq_internal=app.topic(names.dlq_internal, **raw),
        actions=app.topic(names.actions, **raw),
        decisions=app.topic(names.decisions, **raw),
        lifecycle=app.topic(names.lifecycle, **raw),
        training=app.topic(names.training, partitions=1, **raw),
        models_topic=app.topic(names.models, partitions=1, **raw),
        identity=table("identity"),
        profiles=table("profiles"),
        clocks_table=JsonTable(table("clocks")),
        due=JsonTable(table("due")),
        erased=table("erased"),
        sync_models=store.sync,
        read_training=functools.partial(read_range, names.training, 0, client_kwargs=kafka),
        policy_ready=asyncio.Event(),
        erase_salt=models.erase_salt,
        catalog=catalog.items,
        learner=LearnerRules(
            segmenter=models.new_segmenter,
            churn=models.new_churn,
            value=models.new_value,
            similarity=models.new_recommender,
            neighbours_k=settings.similarity.top_k,
            snapshot_every=models.snapshot_every,
            snapshot_interval_s=seg.snapshot_interval_s,
        ),
        models=store.models,
    )

    agents.register(app, rt)

    commits = web.CommitTracker()
    app.sensors.add(_CommitSensor(commits))
    readiness = web.Readiness(app, kafka, mirror, commits)
    token = settings.worker.api_token
    web.register(
        app,
        readiness,
        mirror,
        store,
        catalog.items,
        history=rt.step.history,
        token=token.get_secret_value() if token else None,
    )

    @app.task
    async def mirror_loop() -> None:
        try:
            await mirror.run(settings.redis.flush_interval_s, on_lost=lambda: resync_mirror(rt))
        finally:  # the worker is stopping: write what is pending
            await mirror.flush()

    @app.task
    async def catalog_loop() -> None:
        await _forever("catalog reader", catalog.run)

    def use_step(step: Any) -> None:
        rt.step = step

    policy = PolicyFollower(settings, use_step, step_config)
    metrics.KILL_SWITCH.set(float(settings.contact.paused))

    @app.task
    async def policy_loop() -> None:
        await _forever(
            "policy reader",
            lambda: follow(names.config, kafka, policy.apply, caught_up=rt.policy_ready),
        )

    @app.task
    async def model_loop() -> None:
        await _forever("model snapshot reader", store.run)

    @app.on_rebalance_complete.connect
    async def _after_recovery(sender: Any, **kwargs: Any) -> None:
        forget_clocks(rt)
        await resync_mirror(rt)

    @app.on_partitions_revoked.connect
    async def _on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        forget_clocks(rt)

    return app, rt
