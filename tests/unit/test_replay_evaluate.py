"""nba replay and nba evaluate on small inputs (no Kafka: replay writes to a file)."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from app.rules import setup
from app.settings import Settings
from lab.evaluate import evaluate, render_html
from lab.logs import Mapping, ReadStats, read_ordered
from lab.replay import replay
from lab.sim.output import write_jsonl
from lab.sim.world import World, WorldConfig
from lab.similarity_eval import EMBEDDING_WEIGHTS
from schemas.validate import ValidationPolicy

ROOT = Path(__file__).resolve().parents[2]
POLICY = ValidationPolicy(
    channels=frozenset({"app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms"})
)


def test_replay_of_a_small_csv_with_a_mapping(tmp_path: Path) -> None:
    src = tmp_path / "log.csv"
    src.write_text(
        "uid,iid,ts,event,price\n"
        "alice,c1,2026-01-01T10:00:00Z,pv,\n"
        "bob,c2,2026-01-01T09:00:00Z,buy,29.9\n"
        "carol,,2026-01-01T11:00:00Z,pv,\n"  # a view needs an item
        "dave,c3,notatime,pv,\n"
        "erin,c4,2026-01-01T08:00:00Z,like,\n"
        ",c5,2026-01-01T08:30:00Z,pv,\n"
    )
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(
        "user: uid\nitem: iid\ntime: ts\ntype: event\namount: price\ntype_map: {pv: view, buy: purchase}\n"
    )
    out = tmp_path / "out.jsonl"
    summary = asyncio.run(
        replay(src, mapping=Mapping.from_yaml(mapping_file), policy=POLICY, out=out, progress=False)
    )
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["topic"], x["key"], x["value"]["occurred_at"]) for x in lines] == [
        ("events.web.purchase", "bob", "2026-01-01T09:00:00Z"),
        ("events.web.view", "alice", "2026-01-01T10:00:00Z"),
    ]
    assert lines[0]["value"]["purchase"]["amount"] == 29.9
    assert summary.rows_read == 6 and summary.produced == 2
    assert dict(summary.rejected) == {
        "schema_violation": 1,
        "bad_time": 1,
        "unmapped_type": 1,
        "missing_user": 1,
    }


def test_external_sort_keeps_memory_bounded(tmp_path: Path) -> None:
    """An out-of-order CSV several times larger than the rows allowed in memory: the output is
    complete and ordered, and the peak RSS stays far below what holding it all would take."""
    big, small = tmp_path / "big.csv", tmp_path / "small.csv"
    rows = 300_000
    for path, n in ((big, rows), (small, 100)):
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["user", "item", "epoch"])
            for i in range(n):
                w.writerow([f"u{i % 5000}", f"i{i % 300}", 1_767_225_600 + (n - i) * 7])  # descending
    rss = {}
    for name, path in (("big", big), ("small", small)):
        out = tmp_path / f"{name}.jsonl"
        probe = (
            "import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        cmd = [
            sys.executable,
            "-c",
            probe,
            sys.executable,
            "-m",
            "app.cli",
            "replay",
            str(path),
            "--user-col",
            "user",
            "--item-col",
            "item",
            "--time-col",
            "epoch",
            "--time-unit",
            "s",
            "--default-type",
            "view",
            "--out",
            str(out),
            "--max-rows-in-memory",
            "25000",
        ]
        rss[name] = (
            int(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout) / 1024
        )
    times = [
        orjson.loads(x)["value"]["occurred_at"] for x in (tmp_path / "big.jsonl").read_bytes().splitlines()
    ]
    assert len(times) == rows and times == sorted(times)
    # holding 300,000 decoded records would take several hundred MB; runs of 25,000 take tens
    assert rss["big"] - rss["small"] < 120, rss


@pytest.fixture(scope="module")
def world_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "world.jsonl"
    write_jsonl(World(WorldConfig(days=60, users=1500, seed=21)), path)
    return path


@pytest.mark.slow
def test_small_world_evaluation(world_file: Path, tmp_path: Path) -> None:
    report = evaluate(world_file, setup(Settings()), policy=POLICY)
    assert report["data.events"] > 20_000 and report["data.rejected"] == 0
    assert report["data.duplicates"] > 0
    assert report["churn.snapshots"] > 1000 and 0.02 < report["churn.positive_rate"] < 0.5
    assert report["churn.rule_auc"] > 0.65  # loose bar: recency is informative in this world
    assert report["churn.true_rule_auc"] is not None and report["churn.true_rule_auc"] > 0.55
    # the churn model, loose bars on a small world (quality bars: bench/eval_seeds.py, 5 seeds)
    assert report["churn.label_agreement"] == 1.0  # the worker's labels equal the batch derivation
    assert report["churn.auc"] > 0.7 and report["churn.batch_auc"] > 0.7 and report["churn.true_auc"] > 0.6
    assert report["churn.ece"] < 0.1 and len(report["churn.reliability"]) == 15
    # next purchase, loose bars on a small world (quality bars: bench/eval_seeds.py, 5 seeds)
    assert 0 < report["similarity.hr10_popularity"] < 1
    assert report["similarity.hr10"] > 1.5 * report["similarity.hr10_popularity"]
    assert report["similarity.hr10_itemknn"] > report["similarity.hr10_popularity"]
    assert report["similarity.tuning"]["purchases"] > 100 and report["similarity.purchases_scored"] > 100
    grid = report["similarity.tuning"]["grid"]  # the factorisation's weight is fitted with the others
    assert {float(k.split("embedding=")[1].split(",")[0]) for k in grid} == set(EMBEDDING_WEIGHTS)
    assert report["similarity.blend"]["embedding"] in EMBEDDING_WEIGHTS
    # segmentation and lifecycle, loose bars on a small world (the quality bars are measured on
    # 20,000-user worlds over five seeds: bench/eval_seeds.py)
    assert report["segmentation.samples"] > 1000 and len(report["segmentation.descriptions"]) == 5
    assert report["segmentation.ari"] > 0.4 and report["segmentation.offline_kmeans_ari"] > 0.6
    assert report["segmentation.k_by_silhouette"]["best"] in range(2, 11)
    assert 0 <= report["segmentation.daily_change_rate"] < 0.2
    assert report["lifecycle.dormant_recall_churned"] > 0.8 and report["lifecycle.dormant_rate_active"] < 0.2
    assert sum(report["lifecycle.stages"].values()) == report["data.users"]
    html = render_html(report)
    assert "<svg" in html and "churn.rule_auc" in html and "reliability" in html


@pytest.mark.slow
def test_evaluation_without_truth_derives_labels_from_the_log(world_file: Path, tmp_path: Path) -> None:
    """The same evaluation on a CSV through a column mapping: churn labels from the horizon rule,
    next-purchase targets from the purchases."""
    csv_path = tmp_path / "log.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user", "item", "time", "action", "amount", "rating"])
        for rec in read_ordered(world_file):
            v = rec.value
            if rec.topic.startswith("events.") and v.get("user_id"):
                bought = v["type"] == "purchase"  # written as a 5-star rating: the value rule makes it one
                w.writerow(
                    [
                        v["user_id"],
                        v.get("item_id", ""),
                        v["occurred_at"],
                        "rate" if bought else v["type"],
                        (v.get("purchase") or {}).get("amount", ""),
                        5 if bought else "",
                    ]
                )
    m = Mapping(
        user="user",
        item="item",
        time="time",
        type="action",
        amount="amount",
        type_map={"view": "view", "share": "share", "click": "click"},
        value="rating",
        purchase_min_value=4,
    )
    report = evaluate(csv_path, setup(Settings()), mapping=m, policy=POLICY)
    assert report["truth"] is None and report["churn.true_rule_auc"] is None
    assert "churn.true_rule_auc" in report["absent"] and "churn.true_auc" in report["absent"]
    assert report["churn.auc"] is not None and report["churn.label_agreement"] == 1.0
    assert report["churn.rule_auc"] > 0.65 and report["data.events"] > 10_000
    # next purchase on the same log: the mapping's purchases are the targets
    assert report["similarity.purchases_scored"] > 100
    assert report["similarity.hr10"] > report["similarity.hr10_popularity"] > 0
    assert report["similarity.hr10_itemknn"] is not None


def test_a_ratings_log_counts_high_ratings_as_purchases(tmp_path: Path) -> None:
    src = tmp_path / "ratings.csv"
    src.write_text("u,i,t,stars\na,x,1767225600,5\na,y,1767225660,3\nb,x,1767225720,4.0\nb,z,1767225780,\n")
    m = Mapping(user="u", item="i", time="t", default_type="view", time_unit="s", value="stars")
    rows = [r.value["type"] for r in read_ordered(src, replace(m, purchase_min_value=4))]
    assert rows == ["purchase", "view", "purchase", "view"]
    assert [r.value["type"] for r in read_ordered(src, m)] == ["view"] * 4  # no rule, no purchases
    src.write_text("u,i,t,stars\na,x,1767225600,five\n")
    stats = ReadStats()
    assert list(read_ordered(src, replace(m, purchase_min_value=4), stats=stats)) == []
    assert dict(stats.rejected) == {"bad_value": 1}


def test_parquet_input_reads_like_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"u": ["a", "b"], "i": ["x", "y"], "t": [1_767_225_660, 1_767_225_600]}), path)
    m = Mapping(user="u", item="i", time="t", default_type="view", time_unit="s")
    records = list(read_ordered(path, m))
    assert [r.key for r in records] == ["b", "a"]


def test_external_sort_of_a_simulated_world_keeps_catalog_first(tmp_path: Path) -> None:
    """Simulator output is in delivery order, so evaluating it spills sorted runs: records
    without an event time (the catalog) must survive the trip through JSON."""
    path = tmp_path / "w.jsonl"
    write_jsonl(World(WorldConfig(days=8, users=300, seed=2)), path)
    records = list(read_ordered(path, max_rows_in_memory=500))
    assert records[0].topic == "catalog.items"
    times = [r.ts for r in records]
    assert times == sorted(times)


def test_an_erase_in_the_log_deletes_the_user_and_drops_their_later_events() -> None:
    from lab.evaluate import EvalConfig, Evaluation

    ev = Evaluation(EvalConfig(), POLICY, None, setup(Settings()))

    def view(n: int, user: str | None, anon: str | None, hour: int) -> None:
        ids = {"user_id": user} if user else {}
        ids |= {"anonymous_id": anon} if anon else {}
        value = {"event_id": f"e{n}", "type": "view", "channel": "web", "item_id": "c1"}
        ev.feed(
            "events.web.view", anon or user, value | ids | {"occurred_at": f"2026-01-01T{hour:02}:00:00Z"}
        )

    view(1, None, "d1", 1)  # anonymous, then linked to alice
    view(2, "alice", "d1", 2)
    view(3, "bob", None, 3)
    assert {"u:alice", "a:d1", "u:bob"} <= set(ev.profiles) and ev.store.links == {"d1": "alice"}
    ev.feed("users.erase", "alice", {"request_id": "r1", "user_id": "alice", "at": "2026-01-01T04:00:00Z"})
    assert "u:alice" not in ev.profiles and "a:d1" not in ev.profiles and ev.store.links == {}
    view(4, "alice", None, 5)  # late events of alice and of her device are dropped, not rebuilt
    view(5, None, "d1", 6)
    view(6, "bob", None, 7)
    assert "u:alice" not in ev.profiles and "a:d1" not in ev.profiles
    assert ev.profiles["u:bob"].events == 2
    ev.feed("users.erase", "x", {"user_id": "x"})  # malformed: refused, nothing erased
    report = ev.report(1.0, ReadStats())
    assert (report["data.erased_users"], report["data.erased_events"]) == (1, 2)


def test_a_log_of_purchases_without_views_is_scored_from_the_purchases(tmp_path: Path) -> None:
    """A ratings log where every rating is a purchase and none has a view before it: the next
    purchase is predicted from the earlier ones (it used to crash, or fall back to popularity,
    because such items had no time in the profile)."""
    src = tmp_path / "ratings.csv"
    rows = ["user,item,time,rating"]
    t0 = 1_767_225_600  # 2026-01-01
    for u in range(600):  # 60 days; buyers of p{k} buy q{k} an hour later
        k, t = u % 30, t0 + u * 8640
        rows += [f"u{u},p{k},{t},5", f"u{u},q{k},{t + 3600},4"]
    src.write_text("\n".join(rows) + "\n")
    m = Mapping(user="user", item="item", time="time", time_unit="s", default_type="view", value="rating")
    report = evaluate(src, setup(Settings()), mapping=replace(m, purchase_min_value=4), policy=POLICY)
    assert report["data.events"] == 1200
    # half the purchases are a user's first (nothing to go on); the second ones are all found
    assert report["similarity.purchases_scored"] == 600
    assert report["similarity.hr10"] >= 0.49 > 2 * report["similarity.hr10_popularity"]


def test_a_log_from_before_2000_is_rejected_with_its_reason_and_read_with_an_offset(tmp_path: Path) -> None:
    """A 1997 ratings log: without an offset every row is refused, counted by reason with
    examples that say how to read it; with ``time_offset_s: auto`` it is shifted by whole weeks
    (weekday and hour kept) to start in 2000 and evaluated."""
    src = tmp_path / "ratings.csv"
    t0 = 874_724_710  # 1997-09-20T03:05:10Z, a Saturday
    rows = ["user,item,time,rating"] + [
        f"u{u % 40},i{u % 25},{t0 + u * 3 * 3600},{1 + u % 5}" for u in range(400)
    ]
    src.write_text("\n".join(rows) + "\n")
    m = Mapping(user="user", item="item", time="time", time_unit="s", default_type="view", value="rating")
    m = replace(m, purchase_min_value=4)
    refused = evaluate(src, setup(Settings()), mapping=m, policy=POLICY)
    assert refused["data.events"] == 0 and refused["data.rejected"] == 400
    assert refused["data.rejected_by_reason"] == {"time_outside_contract": 400}
    examples = refused["data.rejected_examples"]["time_outside_contract"]
    assert len(examples) == 3 and examples[0].startswith("row 1: time='874724710' is 1997-09-20T03:05:10Z")
    assert "time_offset_s" in examples[0] and "--time-offset" in examples[0]

    report = evaluate(src, setup(Settings()), mapping=replace(m, time_offset_s="auto"), policy=POLICY)
    assert report["data.events"] == 400 and report["data.rejected"] == 0
    offset = report["data.time_offset_s"]
    assert offset % (7 * 86_400) == 0
    first = datetime.fromtimestamp(t0 + offset, UTC)
    assert (first.year, first.month, first.weekday(), first.hour) == (2000, 1, 5, 3)  # a Saturday, 03:05
    records = list(read_ordered(src, replace(m, time_offset_s=offset)))
    assert records[0].value["occurred_at"] == first.isoformat().replace("+00:00", "Z")


def test_rejections_by_the_validator_carry_the_validator_s_reason(tmp_path: Path) -> None:
    src = tmp_path / "log.csv"
    src.write_text("uid,iid,ts,event\nalice,c1,2026-01-01T10:00:00Z,pv\ncarol,,2026-01-01T11:00:00Z,pv\n")
    m = Mapping(user="uid", item="iid", time="ts", type="event", type_map={"pv": "view"})
    report = evaluate(src, setup(Settings()), mapping=m, policy=POLICY)
    assert report["data.rejected_by_reason"] == {"schema_violation": 1}
    (example,) = report["data.rejected_examples"]["schema_violation"]
    assert example.startswith("events.web.view: ") and "item_id" in example
