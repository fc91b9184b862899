"""``nba demo``: writes the demo catalog and events to Kafka, then shows an action that came out."""

from __future__ import annotations

import time
import uuid

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.demo import demo_catalog, demo_events
from app.kafka import client_kwargs, ensure_topics
from app.settings import Settings
from app.topics import TopicNames


def demo_channels(settings: Settings) -> tuple[str, ...]:
    """Channels users browse on (email and SMS only carry messages to them)."""
    browsing = tuple(c for c in settings.ingress.channels if c not in ("email", "sms"))
    return browsing or tuple(settings.ingress.channels)


async def produce_demo(settings: Settings, n_users: int, events_per_user: int, seed: int, tag: str) -> int:
    names = TopicNames.of(settings)
    channels = demo_channels(settings)
    producer = AIOKafkaProducer(linger_ms=5, acks="all", **client_kwargs(settings))
    await producer.start()
    sent = 0
    try:
        for item in demo_catalog(seed=seed):
            await producer.send(
                names.catalog, key=item.item_id.encode(), value=item.model_dump_json().encode()
            )
        for ev in demo_events(n_users, events_per_user, channels, seed, tag=tag):
            await producer.send(
                names.ingress(ev.topic_channel, ev.type),
                key=ev.key.encode(),
                value=orjson.dumps(ev.payload),
            )
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def first_action(settings: Settings, timeout_s: float, tag: str) -> dict[str, object] | None:
    """The first action for one of this run's users (their ids carry ``tag``)."""
    topic = TopicNames.of(settings).actions
    consumer = AIOKafkaConsumer(
        topic, auto_offset_reset="earliest", enable_auto_commit=False, **client_kwargs(settings)
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    action = dict(orjson.loads(record.value))
                    if f"-{tag}-" in str(action.get("user_id")):
                        return action
    finally:
        await consumer.stop()
    return None


async def run_demo(
    settings: Settings,
    n_users: int,
    events_per_user: int,
    seed: int,
    wait_action: bool,
    timeout_s: float,
) -> int:
    await ensure_topics(settings)
    tag = uuid.uuid4().hex[:6]  # new users each run: a re-run is not dropped as duplicates
    sent = await produce_demo(settings, n_users, events_per_user, seed, tag)
    used = demo_channels(settings)
    click.echo(f"produced {sent} events of {n_users} new users on {len(used)} channels ({', '.join(used)})")
    web = f"http://{settings.worker.web_host}:{settings.worker.web_port}"
    if wait_action:
        action = await first_action(settings, timeout_s, tag)
        if action is None:
            click.echo(f"no action on {TopicNames.of(settings).actions} within {timeout_s:.0f}s", err=True)
            return 1
        click.echo(f"an action from {TopicNames.of(settings).actions}:")
        click.echo(orjson.dumps(action, option=orjson.OPT_INDENT_2).decode())
        click.echo(f"\nthat user's live profile:  curl {web}/users/{action['user_id']}")
    click.echo(f"metrics:                   curl {web}/metrics")
    click.echo(f"readiness:                 curl {web}/readyz")
    return 0
