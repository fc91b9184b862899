"""The ``nba`` command line: worker, topics, schemas, demo, config."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from app.settings import Settings

if TYPE_CHECKING:
    from schemas.decisions import DecisionRecord
    from schemas.training import UpliftSample


def _settings() -> Settings:
    return Settings()


LAB_ONLY = frozenset(("lab", "tqdm", "pyarrow", "sklearn"))
"""Top-level modules that only the offline commands import, lazily (the ``lab`` extra)."""


class _Commands(click.Group):
    """The command group: an offline command run where the lab extra is not installed (the worker
    image) fails with one line that says what to install, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as e:
            if (e.name or "").partition(".")[0] not in LAB_ONLY:
                raise
            raise click.ClickException(
                f"this command needs the lab extra ({e.name} is missing): pip install 'omnichannel-nba[lab]'"
            ) from None


@click.group(cls=_Commands)
def main() -> None:
    """omnichannel-nba: real-time next-best-action on Kafka."""


@main.command()
@click.option("--no-send", is_flag=True, help="Rebuild state without publishing any action.")
@click.option("--create-topics/--no-create-topics", default=True, help="Create missing topics first.")
def worker(no_send: bool, create_topics: bool) -> None:
    """Run the Faust worker (consumes every ingress topic; serves /metrics, /readyz, /users/{id})."""
    from app.factory import create_app
    from app.kafka import ensure_topics
    from app.shutdown import BoundedWorker

    settings = _settings()
    if no_send:
        settings.worker.no_send = True
    if create_topics:
        asyncio.run(ensure_topics(settings))
    app, _ = create_app(settings)
    # a stop may hang while the broker is gone: bounded (app.shutdown)
    w = BoundedWorker(
        app, loglevel=settings.worker.loglevel, shutdown_timeout_s=settings.worker.shutdown_timeout_s
    )
    # Faust's terminal spinner sets the root logger to DEBUG when the level is WARN or above,
    # which makes every aiokafka debug call build a log record (about 9% of the CPU). No spinner.
    w.spinner = None
    w.execute_from_commandline()


@main.command()
@click.option("--check", is_flag=True, help="Only verify; exit 1 if a topic is missing or differs.")
def topics(check: bool) -> None:
    """Create (or verify) every topic with its configured partitions and retention."""
    from app.kafka import ensure_topics
    from app.topics import topic_specs

    settings = _settings()
    if check:
        from aiokafka.admin import AIOKafkaAdminClient

        from app.kafka import client_kwargs

        async def _missing() -> list[str]:
            admin = AIOKafkaAdminClient(**client_kwargs(settings))
            await admin.start()
            try:
                existing = set(await admin.list_topics())
            finally:
                await admin.close()
            return [s.name for s in topic_specs(settings) if s.name not in existing]

        missing = asyncio.run(_missing())
        for name in missing:
            click.echo(f"missing: {name}")
        sys.exit(1 if missing else 0)
    report = asyncio.run(ensure_topics(settings))
    click.echo(f"created {len(report.created)}, existing {len(report.existing)}")
    for line in report.mismatched:
        click.echo(f"MISMATCH {line}", err=True)
    sys.exit(1 if report.mismatched else 0)


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if schemas/json is stale.")
def schemas(check: bool) -> None:
    """Export the JSON Schema of every contract to schemas/json/."""
    from schemas.export import export, stale

    if check:
        names = stale()
        for name in names:
            click.echo(f"stale: {name}")
        sys.exit(1 if names else 0)
    for path in export():
        click.echo(f"wrote {path}")


@main.command()
@click.option("--users", "n_users", default=50, show_default=True)
@click.option("--events-per-user", default=20, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--wait-action/--no-wait-action", default=True, help="Wait for and print one action.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for an action (wall).")
def demo(n_users: int, events_per_user: int, seed: int, wait_action: bool, timeout: float) -> None:
    """Produce a demo catalog and demo events from several channels; print an action."""
    from app.demo_producer import run_demo

    settings = _settings()
    sys.exit(asyncio.run(run_demo(settings, n_users, events_per_user, seed, wait_action, timeout)))


@main.command()
@click.option("--days", default=90, show_default=True, help="Simulated days (event time).")
@click.option("--users", "n_users", default=20_000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write JSONL here (truth beside it as <out>.truth.json); without it, write to Kafka.",
)
@click.option(
    "--rate", default=5000.0, show_default=True, help="Kafka mode: records/s at most (0: no limit)."
)
def simulate(days: int, n_users: int, seed: int, out: Path | None, rate: float) -> None:
    """Simulate a paid-knowledge platform with ground truth (world-v1)."""
    from lab.sim.output import write_jsonl
    from lab.sim.world import World, WorldConfig

    world = World(WorldConfig(days=days, users=n_users, seed=seed))
    if out is not None:
        summary = write_jsonl(world, out)
    else:
        summary = asyncio.run(_simulate_to_kafka(world, rate or None))
        Path("world.truth.json").write_bytes(orjson.dumps(world.truth()))
        summary["truth"] = "world.truth.json"
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


async def _simulate_to_kafka(world: object, rate: float | None) -> dict[str, object]:
    from aiokafka import AIOKafkaProducer

    from app.kafka import client_kwargs, ensure_topics
    from lab.sim.output import write_kafka
    from lab.sim.world import World

    assert isinstance(world, World)
    settings = _settings()
    await ensure_topics(settings)
    producer = AIOKafkaProducer(linger_ms=10, acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        summary = await write_kafka(world, producer, settings.kafka.topic_prefix, rate)
    finally:
        await producer.stop()
    return summary


def _mapping(
    mapping: Path | None,
    user_col: str | None,
    item_col: str | None,
    time_col: str | None,
    type_col: str | None,
    type_map: str | None,
    default_type: str | None,
    time_unit: str,
    amount_col: str | None,
    value_col: str | None,
    purchase_min_value: float | None,
    time_offset: str,
) -> object:
    from lab.logs import Mapping

    if mapping is not None:
        return Mapping.from_yaml(mapping)
    if user_col and item_col and time_col:
        tm = dict(pair.split("=", 1) for pair in type_map.split(",")) if type_map else {}
        return Mapping(
            user=user_col,
            item=item_col,
            time=time_col,
            type=type_col,
            type_map=tm,
            default_type=default_type,
            time_unit=time_unit,
            amount=amount_col,
            value=value_col,
            purchase_min_value=purchase_min_value,
            time_offset_s=time_offset,
        )
    return None


_MAPPING_OPTIONS = [
    click.option(
        "--mapping",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="YAML column mapping for CSV/Parquet (see README).",
    ),
    click.option("--user-col"),
    click.option("--item-col"),
    click.option("--time-col"),
    click.option("--type-col"),
    click.option("--type-map", help="source=click|view|share|purchase,..."),
    click.option("--default-type", help="Type of every row when there is no type column."),
    click.option("--time-unit", default="iso", type=click.Choice(["iso", "s", "ms"]), show_default=True),
    click.option("--amount-col", help="Amount paid (purchases), in the base currency."),
    click.option("--value-col", help="A value column such as a rating, read by --purchase-min-value."),
    click.option("--purchase-min-value", type=float, help="Rows whose value is at least this are purchases."),
    click.option(
        "--time-offset",
        default="0",
        show_default=True,
        help="Seconds added to every row's time, or 'auto' (whole weeks into 2000..2100, for older logs).",
    ),
]


def _with_mapping_options(f: Any) -> Any:
    for option in reversed(_MAPPING_OPTIONS):
        f = option(f)
    return f


def _decision_log_options(f: Any) -> Any:
    """``--decisions`` and ``--outcomes``: a decision log and its outcomes, as JSONL files."""
    f = click.option(
        "--outcomes",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The decisions' outcomes: JSONL of the uplift samples of nba.training.",
    )(f)
    return click.option(
        "--decisions",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The decision log: JSONL of decision.v1 records (marketing.decisions).",
    )(f)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_with_mapping_options
@click.option("--speed", default=0.0, help="N x real time (0: as fast as possible).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSONL instead of Kafka.")
@click.option("--max-rows-in-memory", default=200_000, show_default=True)
def replay(
    path: Path, speed: float, out: Path | None, max_rows_in_memory: int, **mapping_options: Any
) -> None:
    """Replay a log (JSONL, or CSV/Parquet with a mapping) into the ingress topics in event-time order."""
    from lab.logs import Mapping

    settings = _settings()
    m = _mapping(**mapping_options)
    assert m is None or isinstance(m, Mapping)
    summary = asyncio.run(_replay(settings, path, m, speed or None, out, max_rows_in_memory))
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


async def _replay(
    settings: Settings, path: Path, m: Any, speed: float | None, out: Path | None, max_rows: int
) -> dict[str, object]:
    from aiokafka import AIOKafkaProducer

    from app.kafka import client_kwargs, ensure_topics
    from lab.replay import replay as run_replay

    producer = None
    if out is None:
        await ensure_topics(settings)
        producer = AIOKafkaProducer(linger_ms=10, acks="all", **client_kwargs(settings))
        await producer.start()
    try:
        summary = await run_replay(
            path,
            mapping=m,
            policy=_policy(settings),
            producer=producer,
            prefix=settings.kafka.topic_prefix,
            out=out,
            speed=speed,
            max_rows_in_memory=max_rows,
        )
    finally:
        if producer is not None:
            await producer.stop()
    return summary.as_dict()


def _policy(settings: Settings) -> Any:
    from app.rules import validation_policy

    return validation_policy(settings)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_with_mapping_options
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Simulator truth (default: <path>.truth.json if present).",
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON."
)
@click.option(
    "--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report."
)
@click.option("--horizon-days", default=14.0, show_default=True, help="Churn horizon H (event time).")
@_decision_log_options
def evaluate(
    path: Path,
    truth: Path | None,
    json_out: Path | None,
    html_out: Path | None,
    horizon_days: float,
    decisions: Path | None,
    outcomes: Path | None,
    **mapping_options: Any,
) -> None:
    """Prequential evaluation of the models on a log, offline (no Kafka); with a decision log, the
    inverse-propensity and doubly robust estimates of other policies from it."""
    from app.rules import setup
    from lab.evaluate import EvalConfig, render_html, render_table
    from lab.evaluate import evaluate as run_evaluate
    from lab.logs import Mapping

    m = _mapping(**mapping_options)
    assert m is None or isinstance(m, Mapping)
    settings = _settings()
    report = run_evaluate(
        path,
        setup(settings),
        mapping=m,
        truth_path=truth,
        policy=_policy(settings),
        cfg=EvalConfig(horizon_s=horizon_days * 86_400, partitions=settings.kafka.partitions),
        progress=True,
    )
    if decisions is not None:
        if outcomes is None:
            raise click.UsageError("--decisions needs --outcomes")
        report |= _offpolicy_figures(decisions, outcomes)
    click.echo(render_table(report))
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if html_out is not None:
        html_out.write_text(render_html(report))


@main.command()
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The simulator truth of the world whose users answer.",
)
@click.option("--seconds", default=60.0, show_default=True, help="How long to answer (wall time).")
def respond(truth: Path, seconds: float) -> None:
    """Closed loop through Kafka (smoke test): simulated users answer marketing.actions."""
    from lab.sim.responder import users_from_truth

    users = users_from_truth(orjson.loads(truth.read_bytes()))
    summary = asyncio.run(_respond(_settings(), users, seconds))
    click.echo(orjson.dumps(summary).decode())


async def _respond(settings: Settings, users: dict[str, tuple[str, int]], seconds: float) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from app.kafka import client_kwargs
    from app.topics import TopicNames
    from lab.sim.responder import run_responder

    names = TopicNames.of(settings)
    consumer = AIOKafkaConsumer(
        names.actions,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        group_id=f"{settings.worker.app_id}-simulated-users",
        **client_kwargs(settings),
    )
    producer = AIOKafkaProducer(linger_ms=10, acks="all", **client_kwargs(settings))
    await consumer.start()
    await producer.start()
    try:
        return await run_responder(consumer, producer, settings.kafka.topic_prefix, users, seconds)
    finally:
        await consumer.stop()
        await producer.stop()


def _jsonl(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def _decision_log(
    raw_decisions: Sequence[bytes | None], raw_outcomes: Sequence[bytes | None]
) -> tuple[list[DecisionRecord], list[UpliftSample]]:
    """The decision records, and the uplift samples among the training samples (their outcomes;
    a line without a model name is read as one)."""
    from schemas.decisions import DecisionRecord
    from schemas.training import UpliftSample

    records = [DecisionRecord.model_validate_json(v) for v in raw_decisions if v]
    raw = [orjson.loads(v) for v in raw_outcomes if v]
    samples = [UpliftSample.model_validate(s) for s in raw if s.get("model", "uplift") == "uplift"]
    return records, samples


def _offpolicy_figures(decisions: Path, outcomes: Path) -> dict[str, Any]:
    """``offpolicy.<policy>.<ips|dr>`` (mean conversion per decision) from a decision log."""
    from app.action_catalog import load_file
    from lab.policy_report import offpolicy

    records, samples = _decision_log(_jsonl(decisions), _jsonl(outcomes))
    by_id = {s.decision_id: s.y for s in samples}
    ope = offpolicy(records, by_id, load_file(_settings().decision.catalog_path))
    out: dict[str, Any] = {"offpolicy.decisions": ope["decisions"], "offpolicy.logged": ope.get("logged")}
    for name, est in ope.items():
        if isinstance(est, dict):
            out[f"offpolicy.{name}.ips"] = est["ips"][0]
            out[f"offpolicy.{name}.dr"] = est["dr"][0]
            out[f"offpolicy.{name}.dr_ci95"] = [est["dr"][1], est["dr"][2]]
    return out


@main.command()
@_decision_log_options
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Action catalog (else the deployment's).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("nba-report.html"),
    show_default=True,
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the figures as JSON.",
)
def report(
    decisions: Path | None, outcomes: Path | None, catalog_path: Path | None, out: Path, json_out: Path | None
) -> None:
    """Uplift per action, channel and segment, and off-policy estimates, as an HTML report.

    \b
    nba report                       # from marketing.decisions and nba.training
    nba report --decisions d.jsonl --outcomes o.jsonl --out report.html
    """
    from app.action_catalog import load_file
    from app.compacted import read_all
    from app.kafka import client_kwargs
    from app.topics import TopicNames
    from lab.policy_report import build, render_html

    settings = _settings()
    names = TopicNames.of(settings)

    raw_decisions = (
        _jsonl(decisions) if decisions else asyncio.run(read_all(names.decisions, client_kwargs(settings)))
    )
    raw_outcomes = (
        _jsonl(outcomes) if outcomes else asyncio.run(read_all(names.training, client_kwargs(settings)))
    )
    records, samples = _decision_log(raw_decisions, raw_outcomes)
    figures = build(records, samples, load_file(catalog_path or settings.decision.catalog_path))
    out.write_text(render_html(figures))
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    click.echo(f"{len(records)} decisions, {len(samples)} outcomes: wrote {out}")


@main.command()
@click.argument("section", type=click.Choice(["contact", "decision", "catalog"]))
@click.argument("values", required=False)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="catalog: the YAML file.")
@click.option("--by", "changed_by", required=True, help="Who makes the change (audit).")
@click.option("--reason", required=True, help="Why (audit).")
@click.option("--reset", is_flag=True, help="Return the section to the environment's values.")
def policy(
    section: str, values: str | None, path: str | None, changed_by: str, reason: str, reset: bool
) -> None:
    """Change the contact policy, control groups or action catalog of running workers, without a restart.

    \b
    nba policy contact '{"paused": true}' --by alice --reason "incident 42"   (kill switch on)
    nba policy contact '{"paused": false}' --by alice --reason "resolved"
    nba policy decision '{"control_share": 0.1}' --by bob --reason "Q3 measurement"
    nba policy contact --reset --by alice --reason "back to the deployment's settings"
    nba policy catalog --file actions.yaml --by carol --reason "spring winback offer"
    """
    from datetime import UTC, datetime

    from app.topics import TopicNames
    from schemas.config import PolicyChange

    settings = _settings()
    if section == "catalog" and path is not None:
        from app.action_catalog import load_file

        values = load_file(path).model_dump_json()  # a malformed catalog stops here, naming its line
    if reset == (values is not None):
        raise click.UsageError("give either VALUES (a JSON object), --file (catalog) or --reset")
    payload = None
    if values is not None:
        change = PolicyChange(
            section=section,
            values=orjson.loads(values),
            changed_by=changed_by,
            reason=reason,
            at=datetime.now(UTC),
        )
        from app.policy_config import section_with

        if section == "catalog":
            from schemas.action_catalog import ActionCatalog

            ActionCatalog.model_validate(change.values)  # refuse a bad change here already
        else:
            section_with(settings, section, change.values)  # refuse a bad change here already
        payload = change.model_dump_json().encode()
    shown = f"file {path}" if path else ("reset" if reset else values)
    click.echo(f"audit: {section} {shown} by {changed_by}: {reason}")
    asyncio.run(_produce(settings, TopicNames.of(settings).config, section.encode(), payload))


async def _produce(settings: Settings, topic: str, key: bytes, value: bytes | None) -> None:
    from aiokafka import AIOKafkaProducer

    from app.kafka import client_kwargs

    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


@main.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    click.echo(orjson.dumps(_settings().model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
