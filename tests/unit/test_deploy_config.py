"""docker-compose.yml cannot start here (no Docker engine): check that it parses and names only
services, variables and metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _setting_exists(var: str) -> bool:
    section, _, name = var.removeprefix("NBA_").lower().partition("__")
    fields = Settings.model_fields
    if section not in fields:
        return False
    model = fields[section].annotation
    return name in model.model_fields  # type: ignore[union-attr]


def test_compose_parses_and_has_the_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"kafka", "redis", "worker", "prometheus", "grafana", "topics"} <= set(compose["services"])
    assert compose["services"]["kafka"]["image"].endswith(":4.3.0")  # the version the tests run on


def test_every_variable_compose_sets_is_a_setting() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["worker"]["environment"]
    assert env and all(_setting_exists(k) for k in env), [k for k in env if not _setting_exists(k)]
    settings = Settings(_env_file=None, **{})  # defaults
    assert env["NBA_WORKER__WEB_PORT"] == str(settings.worker.web_port)


def test_env_variables_reach_nested_settings(monkeypatch) -> None:
    monkeypatch.setenv("NBA_KAFKA__PARTITIONS", "12")
    monkeypatch.setenv("NBA_INGRESS__CHANNELS", "app,web")
    monkeypatch.setenv("NBA_REDIS__PASSWORD", "s3cret")
    s = Settings(_env_file=None)
    assert s.kafka.partitions == 12 and s.ingress.channels == ["app", "web"]
    assert "s3cret" not in repr(s) and s.redis.password is not None


def test_kafka_version_is_one_pin() -> None:
    pom = (ROOT / "deploy/local/pom.xml").read_text()
    version = re.search(r"<kafka.version>(.+)</kafka.version>", pom).group(1)  # type: ignore[union-attr]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"


def test_prometheus_scrapes_the_worker_and_dashboards_use_real_metrics() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["worker:6066"]
    from agents import metrics

    names = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    dash = json.loads((ROOT / "deploy/grafana/dashboards/nba-worker.json").read_text())
    for panel in dash["panels"]:
        used = set(re.findall(r"nba_[a-z_]+", panel["targets"][0]["expr"]))
        stems = {re.sub(r"_(total|bucket|count|sum)$", "", u) for u in used}
        assert stems <= names, (panel["title"], stems - names)


def test_readme_tables_match_the_code() -> None:
    from app.docs import render

    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "README tables are stale: run `make readme`"
