"""Every topic of the service, declared in one place: name, partitions, key, retention.

Retention is deliberate (wall time, since Kafka applies it to record timestamps, which stay
wall-clock; event time lives in the payload so replayed history is never dropped by it):
ingress and internal 7 days, actions 7 days, DLQ 30 days, catalog compacted forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.settings import Settings
from schemas.validate import ingress_topic

EVENT_TYPES = ("click", "view", "share", "purchase")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    key: str = ""
    schema: str = ""
    producer: str = ""
    consumer: str = ""


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Names of the service's topics under the configured prefix."""

    prefix: str
    channels: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings) -> TopicNames:
        return cls(settings.kafka.topic_prefix, tuple(settings.ingress.channels))

    def ingress(self, channel: str, event_type: str) -> str:
        return ingress_topic(self.prefix, channel, event_type)

    @property
    def all_ingress(self) -> list[str]:
        return [self.ingress(c, t) for c in self.channels for t in EVENT_TYPES]

    @property
    def dlq(self) -> str:
        return f"{self.prefix}events.dlq"

    @property
    def dlq_internal(self) -> str:
        return f"{self.prefix}nba.dlq-internal"

    @property
    def user_stream(self) -> str:
        return f"{self.prefix}nba.user-stream"

    @property
    def actions(self) -> str:
        return f"{self.prefix}marketing.actions"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}marketing.decisions"

    @property
    def config(self) -> str:
        return f"{self.prefix}nba.config"

    @property
    def catalog(self) -> str:
        return f"{self.prefix}catalog.items"

    @property
    def consent(self) -> str:
        return f"{self.prefix}users.consent"

    @property
    def erase(self) -> str:
        return f"{self.prefix}users.erase"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}marketing.feedback"

    @property
    def lifecycle(self) -> str:
        return f"{self.prefix}users.lifecycle"

    @property
    def training(self) -> str:
        return f"{self.prefix}nba.training"

    @property
    def models(self) -> str:
        return f"{self.prefix}nba.models"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic ``nba topics`` creates, with its documented contract."""
    names = TopicNames.of(settings)
    k = settings.kafka
    n = k.partitions

    def deleted_after(ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(ms)}

    compacted = {"cleanup.policy": "compact"}
    specs = [
        TopicSpec(
            name,
            n,
            deleted_after(k.retention_events_ms),
            key="anonymous_id if present, else user_id",
            schema="event.v1",
            producer="app teams (every channel)",
            consumer="worker: ingest",
        )
        for name in names.all_ingress
    ]
    specs += [
        TopicSpec(
            names.dlq,
            n,
            deleted_after(k.retention_dlq_ms),
            key="original key",
            schema="dead_letter.v1",
            producer="worker (refused ingress, consent, feedback and erase messages)",
            consumer="SREs, producer teams",
        ),
        TopicSpec(
            names.dlq_internal,
            n,
            deleted_after(k.retention_dlq_ms),
            key="original key",
            schema="dead_letter.v1",
            producer="worker (messages of its internal topics it could not process)",
            consumer="SREs (a record here is a bug of the service, not of a producer)",
        ),
        TopicSpec(
            names.user_stream,
            n,
            deleted_after(k.retention_events_ms),
            key="raw id of the target user (user_id or anonymous_id)",
            schema="internal",
            producer="worker (links, forwards, merges)",
            consumer="worker: users",
        ),
        TopicSpec(
            names.actions,
            n,
            deleted_after(k.retention_actions_ms),
            key="user_id",
            schema="next_best_action.v1",
            producer="worker",
            consumer="marketing senders",
        ),
        TopicSpec(
            names.decisions,
            n,
            deleted_after(k.retention_decisions_ms),
            key="user_id",
            schema="decision.v1",
            producer="worker",
            consumer="analysts, uplift reports and off-policy evaluation",
        ),
        TopicSpec(
            names.config,
            1,
            compacted,
            key="section (contact, decision, catalog)",
            schema="policy_change.v1",
            producer="operators (nba policy)",
            consumer="worker (every instance): contact policy, control groups and action catalog, "
            "without a restart",
        ),
        TopicSpec(
            names.catalog,
            1,
            compacted,
            key="item_id",
            schema="catalog_item.v1",
            producer="catalog service",
            consumer="worker (every instance)",
        ),
        TopicSpec(
            names.consent,
            n,
            compacted,
            key="user_id:channel",
            schema="consent.v1",
            producer="account service",
            consumer="worker: consent (into the profile; decisions use it)",
        ),
        TopicSpec(
            names.erase,
            n,
            deleted_after(k.retention_dlq_ms),
            key="user_id",
            schema="erase_request.v1",
            producer="account service",
            consumer="worker: erase (deletes the user everywhere; see Erase in the README)",
        ),
        TopicSpec(
            names.feedback,
            n,
            deleted_after(k.retention_actions_ms),
            key="user_id",
            schema="feedback.v1",
            producer="marketing senders",
            consumer="worker: feedback (answers and unsubscribes into the profile's contact state)",
        ),
        TopicSpec(
            names.lifecycle,
            n,
            deleted_after(k.retention_actions_ms),
            key="user_id (or anonymous_id)",
            schema="lifecycle_change.v1",
            producer="worker",
            consumer="marketing tools (journeys, CRM)",
        ),
        TopicSpec(
            names.training,
            1,
            deleted_after(k.retention_events_ms),
            key="none",
            schema="training_sample.v1",
            producer="worker (feature samples, churn/value labels, item interactions, decision outcomes)",
            consumer="worker: learner (one instance, the owner of its only partition)",
        ),
        TopicSpec(
            names.models,
            1,
            compacted,
            key="model name",
            schema="internal (header + pickle)",
            producer="worker: learner",
            consumer="worker (every instance scores from the latest snapshot)",
        ),
    ]
    return specs


def topic_table(settings: Settings) -> str:
    """The README's topic table, rendered from :func:`topic_specs` (ingress topics on one row)."""
    specs = topic_specs(settings)
    ingress = [s for s in specs if s.schema == "event.v1"]
    rows = [
        "| topic | partitions | key | schema | producer | consumer | retention / cleanup |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def retention(s: TopicSpec) -> str:
        if s.config.get("cleanup.policy") == "compact":
            return "compacted"
        return f"{int(s.config['retention.ms']) // 86_400_000} days"

    first = ingress[0]
    rows.append(
        f"| `events.<channel>.<type>` ({len(ingress)} topics) | {first.partitions} | {first.key} | "
        f"`{first.schema}` | {first.producer} | {first.consumer} | {retention(first)} |"
    )
    for s in specs:
        if s.schema != "event.v1":
            rows.append(
                f"| `{s.name}` | {s.partitions} | {s.key} | `{s.schema}` | {s.producer} | "
                f"{s.consumer} | {retention(s)} |"
            )
    return "\n".join(rows)
