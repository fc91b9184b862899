"""Prometheus metrics of the worker. No user or item ids in labels: only bounded label sets."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS_CONSUMED = Counter(
    "nba_events_consumed_total", "Valid ingress events, by channel and type.", ["channel", "type"]
)
EVENTS_INVALID = Counter("nba_events_invalid_total", "Dead-lettered messages, by reason.", ["reason"])
INTERNAL_DEAD_LETTERS = Counter(
    "nba_internal_dead_letters_total",
    "Messages of internal topics the worker could not process (to nba.dlq-internal), by topic.",
    ["topic"],
)
DLQ_SEND_FAILURES = Counter(
    "nba_dlq_send_failures_total",
    "Dead-letter records that could not be published after every retry (the log names the source).",
)
EVENTS_APPLIED = Counter("nba_events_applied_total", "Events applied to a profile.")
EVENTS_DUPLICATE = Counter("nba_events_duplicate_total", "Duplicate events dropped (channel, event_id).")
EVENTS_LATE = Counter(
    "nba_events_late_total",
    "Events older than the user's dedupe window behind their newest event: not applied (cannot be "
    "proved new). Out-of-order events within the window are applied exactly.",
)
EVENTS_PARK_OVERFLOW = Counter(
    "nba_events_park_overflow_total",
    "Forwarded events dropped because a user already held the most events awaiting a merge.",
)
EVENTS_BACKFILL = Counter("nba_events_backfill_total", "Events applied but too old to trigger actions.")
IDENTITY_LINKS = Counter("nba_identity_links_total", "New anonymous-to-user links.")
IDENTITY_CONFLICTS = Counter("nba_identity_conflicts_total", "Links refused: anonymous id already linked.")
PROFILES_MERGED = Counter("nba_profiles_merged_total", "Anonymous profiles merged into users.")
USER_STREAM_MESSAGES = Counter(
    "nba_user_stream_messages_total",
    "Messages the users agent applied from nba.user-stream (forwarded events, links, merges, "
    "consent, feedback, erase), by kind.",
    ["kind"],
)
CONSENT_CHANGES = Counter(
    "nba_consent_changes_total",
    "Consent changes applied to profiles (older or repeated ones are not counted).",
    ["channel", "granted"],
)
FEEDBACK = Counter(
    "nba_feedback_total",
    "Sender feedback read from marketing.feedback, by kind, and whether it changed a profile.",
    ["kind", "changed"],
)
ACTIONS_PUBLISHED = Counter(
    "nba_actions_published_total",
    "Actions published to marketing.actions.",
    ["action_type", "channel"],
)
POLICY_CHANGES = Counter(
    "nba_policy_changes_total", "Contact-policy and control-group changes applied from nba.config."
)
POLICY_REJECTED = Counter(
    "nba_policy_rejected_total", "nba.config records refused (invalid): they changed nothing."
)
KILL_SWITCH = Gauge("nba_kill_switch", "1 while the kill switch is on (no new action is published).")
ERASED = Counter(
    "nba_erased_total",
    "Erase requests carried out per canonical id (deleted, or absent: nothing was stored).",
    ["result"],
)
ERASED_EVENTS_DROPPED = Counter(
    "nba_erased_events_dropped_total", "Late events of erased ids, dropped by the suppression list."
)
DECISIONS = Counter(
    "nba_decisions_total",
    "Decisions logged to marketing.decisions, by outcome (sent, no_action, control, holdout).",
    ["outcome"],
)
ACTIONS_CANCELLED = Counter(
    "nba_actions_cancelled_total",
    "action_cancelled events published (consent revoked before an action's send time).",
    ["action_type", "channel"],
)
ACTIONS_SUPPRESSED = Counter("nba_actions_suppressed_total", "Decisions not sent (no-send mode).")
DUE_FIRED = Counter("nba_due_fired_total", "Due-time wake-ups fired by the event-time watermark.")
LIFECYCLE_TRANSITIONS = Counter(
    "nba_lifecycle_transitions_total",
    "Lifecycle stage changes published to users.lifecycle.",
    ["from_stage", "to_stage"],
)
SEGMENT_MOVES = Counter(
    "nba_segment_moves_total",
    "Users assigned a different segment on an event ('none': first assignment).",
    ["from_segment", "to_segment"],
)
SEGMENT_USERS = Gauge(
    "nba_segment_users",
    "Users per segment (Redis membership sets; every worker reports the same totals: use max).",
    ["segment"],
)
TRAINING_SAMPLES = Counter("nba_training_samples_total", "Profile samples sent to the training stream.")
LEARNED_SAMPLES = Counter(
    "nba_model_samples_learned_total", "Training samples learned by the learner, by model.", ["model"]
)
NEIGHBOUR_LISTS = Counter(
    "nba_neighbour_lists_written_total", "Item neighbour lists rewritten in Redis by the learner."
)
SNAPSHOTS = Counter("nba_model_snapshots_total", "Model snapshots published, by model.", ["model"])
SEGMENT_SHARE = Gauge(
    "nba_segment_share",
    "Share of recent training samples per segment (learner's view; sizes in users: GET /segments).",
    ["segment"],
)
PROCESSING_LATENCY = Histogram(
    "nba_processing_latency_seconds",
    "Wall time from ingress arrival (record timestamp) to the profile update.",
    buckets=_LATENCY_BUCKETS,
)
ACTION_LATENCY = Histogram(
    "nba_action_latency_seconds",
    "Wall time from the trigger event's ingress arrival to the action publish.",
    buckets=_LATENCY_BUCKETS,
)
ACTION_HOLD = Histogram(
    "nba_action_hold_seconds",
    "Event time from a published action's decision to its send_at (quiet hours, the user's active hour).",
    buckets=(0.0, 900.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0, 24 * 3600.0, 36 * 3600.0),
)
CONSUMER_LAG = Gauge(
    "nba_consumer_lag", "Messages not yet committed, per topic partition.", ["topic", "partition"]
)
WATERMARK = Gauge(
    "nba_watermark_seconds", "Event-time watermark of each user-stream partition.", ["partition"]
)
MIRROR_FLUSHES = Counter("nba_redis_flushes_total", "Pipelined Redis mirror flushes.")
MIRROR_ERRORS = Counter("nba_redis_errors_total", "Failed Redis mirror flushes (retried).")
REDIS_ERRORS = Counter(
    "nba_redis_operation_errors_total",
    "Failed Redis operations other than profile flushes (retried later), by operation.",
    ["operation"],
)

CHURN_AUC = Gauge(
    "nba_churn_auc",
    "Churn model: exact ROC AUC over the last 10,000 labels, each scored before it was learned.",
)
CHURN_LOG_LOSS = Gauge("nba_churn_log_loss", "Churn model: log loss over the same window.")
CHURN_ECE = Gauge(
    "nba_churn_ece", "Churn model: expected calibration error (15 equal-mass bins) over the same window."
)
CHURN_DRIFTS = Counter("nba_churn_drifts_total", "Drifts ADWIN detected in the churn model's error stream.")
CHURN_LABELS = Counter(
    "nba_churn_labels_total", "Churn and value snapshots labelled and sent to training, by model.", ["model"]
)

OUTCOMES = Counter(
    "nba_outcomes_total",
    "Decision outcomes at the end of their attribution window, by the action decided, group "
    "(treatment, control, holdout, none) and whether the item was bought.",
    ["action", "group", "converted"],
)
UPLIFT = Gauge(
    "nba_uplift",
    "Treated minus control conversion of the decisions (learner), by dimension (action, channel, segment).",
    ["dimension", "value"],
)
UPLIFT_LOW = Gauge("nba_uplift_ci_low", "Low end of nba_uplift's 95% interval.", ["dimension", "value"])
UPLIFT_HIGH = Gauge("nba_uplift_ci_high", "High end of nba_uplift's 95% interval.", ["dimension", "value"])
