"""The ``nba`` command line: worker, topics, schemas, demo, config."""

from __future__ import annotations

import asyncio
import sys

import click
import orjson

from app.settings import Settings


def _settings() -> Settings:
    return Settings()


@click.group()
def main() -> None:
    """omnichannel-nba: real-time next-best-action on Kafka."""


@main.command()
@click.option("--no-send", is_flag=True, help="Rebuild state without publishing any action.")
@click.option("--create-topics/--no-create-topics", default=True, help="Create missing topics first.")
def worker(no_send: bool, create_topics: bool) -> None:
    """Run the Faust worker (consumes every ingress topic; serves /metrics, /readyz, /users/{id})."""
    import faust

    from app.factory import create_app
    from app.kafka import ensure_topics

    settings = _settings()
    if no_send:
        settings.worker.no_send = True
    if create_topics:
        asyncio.run(ensure_topics(settings))
    app, _ = create_app(settings)
    w = faust.Worker(app, loglevel=settings.worker.loglevel)
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
def config() -> None:
    """Print the effective settings (secrets masked)."""
    click.echo(orjson.dumps(_settings().model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
