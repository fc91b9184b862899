"""All configuration, from environment variables (prefix ``NBA_``, nested sections with ``__``).

Example: ``NBA_KAFKA__BOOTSTRAP=127.0.0.1:9092``, ``NBA_TIME__LATENESS_S=300``.
Every default is documented in the README's environment-variable table
(``nba config`` prints the effective values, secrets masked).
Clock of each time setting: **event time** unless its name says ``wall``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.vocabulary import CHANNELS, DAY

DEFAULT_CHANNELS: list[str] = list(CHANNELS)


class KafkaSettings(BaseModel):
    bootstrap: str = Field("127.0.0.1:9092", description="Broker list, host:port[,host:port].")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of every topic this service creates.")
    replication: int = Field(1, ge=1, le=16, description="Replication factor of created topics.")
    topic_prefix: str = Field("", description="Prefix of every topic name (isolates environments and tests).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, for every Kafka client."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required with SASL_*)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: Path | None = Field(
        None, description="PEM CA bundle that signs the brokers' certificates (unset: the system's)."
    )
    ssl_certfile: Path | None = Field(None, description="PEM client certificate, when brokers require one.")
    ssl_keyfile: Path | None = Field(None, description="PEM private key of the client certificate.")
    ssl_key_password: SecretStr | None = Field(None, description="Password of an encrypted ssl_keyfile.")
    ssl_check_hostname: bool = Field(True, description="Check that the broker's certificate names its host.")
    retention_events_ms: int = Field(7 * 86_400_000, description="Ingress and internal topics (wall time).")
    retention_actions_ms: int = Field(7 * 86_400_000, description="marketing.actions (wall time).")
    retention_dlq_ms: int = Field(30 * 86_400_000, description="events.dlq (wall time).")
    retention_decisions_ms: int = Field(
        90 * 86_400_000, description="marketing.decisions, the decision log (wall time)."
    )

    @property
    def url(self) -> str:
        return ";".join(f"kafka://{hp}" for hp in self.bootstrap.split(","))

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"{self.security_protocol} needs sasl_mechanism, sasl_username, sasl_password")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(f"sasl_mechanism is set but security_protocol is {self.security_protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self


class RedisSettings(BaseModel):
    url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis URL (no password in it); rediss://... for TLS."
    )
    username: str | None = Field(None, description="Redis ACL user (unset: the default user).")
    password: SecretStr | None = Field(None, description="Redis password (AUTH).")
    ssl_ca_certs: Path | None = Field(None, description="rediss://: PEM CA bundle (unset: the system's).")
    ssl_certfile: Path | None = Field(None, description="rediss://: PEM client certificate, if required.")
    ssl_keyfile: Path | None = Field(None, description="rediss://: PEM key of the client certificate.")
    ssl_check_hostname: bool = Field(True, description="rediss://: check the certificate names the host.")
    key_prefix: str = Field("nba:", description="Prefix of every Redis key this service writes.")
    flush_interval_s: float = Field(0.1, gt=0, le=10, description="Mirror flush period (wall time).")


class WorkerSettings(BaseModel):
    app_id: str = Field("omnichannel-nba", description="Faust app id = consumer group and changelog prefix.")
    web_host: str = Field("127.0.0.1", description="Address of /metrics, /healthz, /readyz, /users/{id}.")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the web endpoints.")
    datadir: Path = Field(Path("var/worker"), description="Local table storage (RocksDB).")
    store: str = Field("rocksdb://", description="Faust table store: rocksdb:// or memory://.")
    commit_interval_s: float = Field(1.0, gt=0, description="Offset commit period (wall time).")
    no_send: bool = Field(False, description="Rebuild state without publishing any action.")
    session_timeout_s: float = Field(
        30.0,
        ge=6,
        description="Consumer-group session timeout (wall): how long a dead worker holds its partitions.",
    )
    heartbeat_interval_s: float = Field(3.0, gt=0, description="Consumer-group heartbeat period (wall).")
    loglevel: str = Field("info", description="debug, info, warning or error.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token the read endpoints (/users, /items, /segments) require; unset: "
        "open. /metrics, /healthz and /readyz stay open.",
    )
    shutdown_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest stop (wall): past it the worker exits with code 70 without a clean stop "
        "(uncommitted offsets are consumed again; tables recover from their changelogs).",
    )


class IngressSettings(BaseModel):
    channels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS), description="Comma-separated channel names."
    )
    max_message_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Larger ingress messages are dead-lettered (oversized).",
    )
    base_currency: str = Field(
        "CNY", pattern=r"^[A-Z]{3}$", description="Currency every spend is normalised to."
    )
    fx_rates: dict[str, float] = Field(
        default_factory=lambda: {"USD": 7.1, "EUR": 7.7, "HKD": 0.91, "JPY": 0.047, "GBP": 9.0},
        description="Base-currency units per unit of each currency.",
    )

    @field_validator("channels", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return [c.strip() for c in v.split(",") if c.strip()] if isinstance(v, str) else v


class TimeSettings(BaseModel):
    """Event-time rules (seconds of event time)."""

    dedupe_window_s: float = Field(
        7 * DAY, gt=0, description="Exact dedupe window behind a user's newest event."
    )
    lateness_s: float = Field(
        300.0, ge=0, description="Watermark = newest event time on a partition minus this."
    )
    backfill_max_age_s: float = Field(
        DAY,
        ge=0,
        description="Events older than this behind the watermark never trigger an action.",
    )
    due_bucket_s: float = Field(3600.0, gt=0, description="Granularity of the due-time index.")
    watermark_support: int = Field(
        3,
        ge=1,
        description="A partition's watermark moves only when this many events are at least that "
        "new (one wrongly dated event cannot move it).",
    )
    max_future_skew_s: float = Field(
        600.0,
        gt=0,
        description="Events dated more than this after their Kafka record timestamp (the producer's "
        "clock) go to the DLQ as future_dated.",
    )


class LifecycleSettings(BaseModel):
    """Lifecycle stage rules (see models/lifecycle.py); counts, and days of event time."""

    activation_events: int = Field(
        5, ge=1, description="Events that activate a user without a meaningful one."
    )
    retention_days: int = Field(3, ge=2, description="Distinct active days of an activated user: retention.")
    expansion_purchases: int = Field(2, ge=2, description="Purchases that make expansion.")
    loyalty_purchases: int = Field(
        3, ge=2, description="Purchases (with a share, sustained) that make loyalty."
    )
    loyalty_recent_days: int = Field(4, ge=1, description="Active days needed in the loyalty window.")
    loyalty_window_days: int = Field(30, ge=1, description="Window before the newest event for loyalty.")
    default_rhythm_days: float = Field(
        7.0, gt=0, description="Rhythm of a user with fewer than 2 active days."
    )
    at_risk_factor: float = Field(2.0, gt=0, description="At risk after this many times the user's rhythm...")
    at_risk_min_days: float = Field(3.0, gt=0, description="...but never before this...")
    at_risk_max_days: float = Field(10.0, gt=0, description="...and always after this.")
    dormant_factor: float = Field(3.0, gt=0, description="Dormant after this many times the user's rhythm...")
    dormant_min_days: float = Field(7.0, gt=0, description="...but never before this...")
    dormant_max_days: float = Field(14.0, gt=0, description="...and always after this.")


class SegmentSettings(BaseModel):
    """Online segmentation (see models/segmentation.py)."""

    n_segments: int = Field(5, ge=2, le=20, description="Number of segments (see README: how it was chosen).")
    halflife: float = Field(
        0.01, gt=0, le=1, description="Floor of a centroid's learning rate (memory ~1/halflife samples)."
    )
    warmup: int = Field(500, ge=10, description="Training samples before the centroids are seeded.")
    freeze_scaler_after: int | None = Field(
        None, ge=10, description="Training samples after which scaling is fixed (unset: never)."
    )
    seed: int = Field(42, description="Seed of the segmentation model.")
    train_interval_s: float = Field(
        DAY, ge=0, description="Event time between two training samples of one user."
    )
    train_min_events: int = Field(5, ge=1, description="Users with fewer events send no training samples.")
    snapshot_every: int = Field(1_000, ge=1, description="Training samples between model snapshots.")
    snapshot_interval_s: float = Field(
        30.0, gt=0, description="Wall seconds after which pending samples are snapshotted anyway."
    )


class ChurnSettings(BaseModel):
    """Churn risk and 30-day value (see models/churn.py); days of event time."""

    horizon_days: float = Field(14.0, gt=0, description="H: churned at t if no activity in (t, t + H].")
    value_horizon_days: float = Field(
        30.0, gt=0, description="V: the value label is the spend in (t, t + V]."
    )
    sample_every_days: float = Field(
        3.0, gt=0, description="At most one pending feature snapshot per user per this many days."
    )
    active_window_days: float = Field(
        30.0, gt=0, description="Users silent for longer are no longer scored on the daily tick."
    )
    classifier: Literal["logistic", "hoeffding"] = Field(
        "logistic", description="Churn classifier: scaled logistic regression, or a Hoeffding adaptive tree."
    )
    calibration_lr: float = Field(0.02, gt=0, description="Learning rate of the online Platt calibration.")
    drift_delta: float = Field(0.002, gt=0, lt=1, description="ADWIN confidence on the churn error stream.")


class SimilaritySettings(BaseModel):
    """Item similarity and recommendations (see models/similarity.py, models/recommend.py); the
    defaults are what ``nba evaluate`` fitted on the tuning days of simulated worlds."""

    fan_out: int = Field(20, ge=1, description="A user's recent items each interaction pairs with.")
    half_life_days: float = Field(30.0, gt=0, description="Event-time half-life of co-occurrence counts.")
    shrinkage: float = Field(5.0, ge=0, description="Shrinks the similarity of rarely seen pairs.")
    content_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of catalog (content) similarity in the blend (co-occurrence: 1); an item "
        "with no co-occurrence yet is served by its content whatever this is.",
    )
    embedding_weight: float = Field(
        0.05,
        ge=0,
        description="Weight of the learned item vectors (River's factorisation; evidence above "
        "chance, 0..1) in the blend (co-occurrence: 1).",
    )
    embedding_factors: int = Field(16, ge=2, le=256, description="Size of the learned item vectors.")
    embedding_context: int = Field(
        4, ge=1, description="A user's recent items each interaction is a factorisation positive for."
    )
    embedding_negatives: int = Field(2, ge=0, description="Negative items sampled per positive.")
    history_half_life_days: float = Field(
        60.0, gt=0, description="How fast a user's older items stop counting in recommendations."
    )
    history: int = Field(
        20,
        ge=1,
        description="How many of a user's most recent items recommendations start from (at most "
        "fan_out are kept; nba evaluate reports the best on its tuning days as similarity.blend.history).",
    )
    neighbours: int = Field(
        30, ge=1, description="Neighbours of each recent item that recommendations draw from."
    )
    popular: float = Field(
        0.3, ge=0, description="Weight of segment favourites and trending items against personal ones."
    )
    max_per_series: int = Field(2, ge=1, description="At most this many parts of one series in a list.")
    top_k: int = Field(
        10, ge=1, le=100, description="Recommendations per list, neighbours per item in Redis."
    )


class RuleSettings(BaseModel):
    views_threshold: int = Field(
        3, ge=1, description="Views of one item, without buying it, that trigger recommend_item."
    )
    expiry_s: float = Field(2 * DAY, gt=0, description="An action expires this long after its send time.")


class EraseSettings(BaseModel):
    """Erase requests (users.erase)."""

    salt: SecretStr = Field(
        SecretStr("omnichannel-nba-erase"),
        description="Key of the hashed suppression list of erased ids; set your own secret in production.",
    )


class DecisionSettings(BaseModel):
    """The policy and its control groups (see models/arbitration.py and models/decision.py): control
    and holdout decisions are made and logged on marketing.decisions like the others, never sent."""

    policy: Literal["learned", "rule"] = Field(
        "learned",
        description="learned: arbitration over the action catalog by learned uplift, with exploration; "
        "rule: the foundation rule (recommend_item after repeated views).",
    )
    catalog_path: Path | None = Field(
        None, description="The action catalog (YAML); the shipped app/actions.yaml if unset."
    )

    control_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Users in the global control group (by hash): decided, logged, never sent.",
    )
    holdout_shares: dict[str, float] = Field(
        default_factory=dict,
        description='Per action type, users held out of it, e.g. {"winback_offer": 0.1}.',
    )


class ContactSettings(BaseModel):
    """Contact policy (see models/contact.py): caps over any day or week of event time, cooldowns,
    quiet hours in the user's local time, suppression of users who ignore messages, kill switch."""

    max_per_day: int = Field(2, ge=0, description="Messages to one user in any 24 hours, all channels.")
    max_per_week: int = Field(5, ge=0, description="Messages to one user in any 7 days, all channels.")
    channel_max_per_day: int = Field(
        1, ge=0, description="Messages to one user in any 24 hours, per channel."
    )
    channel_max_per_week: int = Field(3, ge=0, description="Messages to one user in any 7 days, per channel.")
    default_cooldown_days: float = Field(
        1.0, ge=0, description="Days between two actions of the same type to one user."
    )
    cooldown_days: dict[str, float] = Field(
        default_factory=dict, description='Per action type, e.g. {"winback_offer": 14} (JSON).'
    )
    quiet_start_hour: int = Field(21, ge=0, le=23, description="Quiet hours start (user's local hour).")
    quiet_end_hour: int = Field(8, ge=0, le=23, description="Quiet hours end (local hour; = start: none).")
    default_timezone: str = Field("Asia/Shanghai", description="For users whose events name no timezone.")
    max_ignored: int = Field(
        3, ge=1, description="Messages in a row expiring without an open or click before suppression."
    )
    suppression_days: float = Field(30.0, ge=0, description="How long a suppressed user is left alone.")
    paused: bool = Field(False, description="Kill switch: no new action is published (needs a restart).")


class Settings(BaseSettings):
    """The one settings object. Sections: kafka, redis, worker, ingress, time, lifecycle, segments, churn,
    similarity, rule, contact, decision, erase."""

    model_config = SettingsConfigDict(
        env_prefix="NBA_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    worker: WorkerSettings = WorkerSettings()
    ingress: IngressSettings = IngressSettings()
    contact: ContactSettings = ContactSettings()
    decision: DecisionSettings = DecisionSettings()
    erase: EraseSettings = EraseSettings()
    time: TimeSettings = TimeSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    segments: SegmentSettings = SegmentSettings()
    churn: ChurnSettings = ChurnSettings()
    similarity: SimilaritySettings = SimilaritySettings()
    rule: RuleSettings = RuleSettings()


def env_table() -> str:
    """The README's environment-variable table, rendered from the settings classes."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for section, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        defaults = model()
        for name, field in model.model_fields.items():
            value = getattr(defaults, name)
            if isinstance(value, SecretStr):
                shown = "(secret)"
            elif isinstance(value, list):
                shown = ",".join(map(str, value))
            elif isinstance(value, dict):
                shown = ",".join(f"{k}={v}" for k, v in value.items())
            else:
                shown = "" if value is None else str(value)
            rows.append(
                f"| `NBA_{section.upper()}__{name.upper()}` | `{shown}` | {field.description or ''} |"
            )
    return "\n".join(rows)
