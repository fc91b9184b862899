"""Cost of one decision on one core: the contact check alone, the foundation rule's ``decide``
and the learned policy's (:class:`models.arbitration.LearnedPolicy` over the shipped catalog,
with an uplift model that has learned 20,000 outcomes) end to end on a view that triggers an
action (eligibility, candidates over the user's channels, consent, contact rules, quiet hours,
the send time from the user's active hours, uplift scores with the user's channel factors, the
exploration and control-group draws and the action), for users with 50 events, a contact log of
several sends and answered messages per channel.

    python -m bench.decision --users 2000 --rounds 20

Writes bench/results/decision.json. The recommendations an action carries are not included
(``bench.similarity`` measures them).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from app.action_catalog import load_file
from models.arbitration import LearnedPolicy
from models.contact import ContactRules, ContactState, blocked
from models.decision import DecisionContext, decide
from models.facts import EventFacts
from models.profile import Profile
from models.recommend import Recommendation
from models.uplift import UpliftModel

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms")
DAY = 86_400.0
T0 = 1_772_424_000.0  # 2026-03-02 04:00 UTC


def _user(i: int, rng: random.Random) -> tuple[Profile, ContactState]:
    channels = rng.sample(CHANNELS, rng.randint(1, 5))
    hours = [0] * 24
    peak = rng.uniform(0, 24)
    for _ in range(50):  # the hours of their 50 events, around a personal peak
        hours[int(rng.gauss(peak, 2.5)) % 24] += 1
    sent = {c: rng.randint(0, 10) for c in channels}
    p = Profile(
        f"u:{i}",
        events=50,
        hours=hours,
        responses={c: [n, rng.randint(0, n)] for c, n in sent.items()},
        by_channel={c: rng.randint(1, 20) for c in channels},
        item_views={"c1": [3, T0]},
        timezone=rng.choice(["Asia/Shanghai", "America/Los_Angeles", None]),
        stage=rng.choice(["activation", "retention", "at_risk", "loyalty"]),
        purchases=rng.randint(0, 4),
        consent={c: [rng.random() > 0.2, T0 - DAY] for c in channels},
    )
    state = ContactState()
    for k in range(rng.randint(0, 6)):  # a week of sends
        at = T0 - rng.uniform(0, 7 * DAY)
        state = state.sent(
            rng.choice(["recommend_item", "winback_offer"]),
            rng.choice(channels),
            at=at,
            action_id=f"{i}-{k}",
            expires_at=at + 2 * DAY,
        )
    return p, state


def main(users: int, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    people = [_user(i, rng) for i in range(users)]
    rules = ContactRules()
    started = time.process_time()
    for _ in range(rounds):
        for p, state in people:
            for c in p.by_channel:
                blocked(rules, state, "recommend_item", c, at=T0)
    checks = rounds * sum(len(p.by_channel) for p, _ in people)
    check_us = (time.process_time() - started) / checks * 1e6
    recs = [Recommendation("c7", 0.9, "viewed together with c1"), Recommendation("c8", 0.5, "popular")]
    model = UpliftModel()
    for _ in range(20_000):  # outcomes of every action type on every channel
        action = rng.choice(["none", "recommend_item", "abandoned_view_reminder", "winback_offer"])
        x = {"item_views": float(rng.randint(0, 4)), "action": action, "channel": rng.choice(CHANNELS)}
        if action != "none":
            x["answered"] = float(rng.random() < 0.3)
        model.learn_one(x, rng.random() < 0.05)
    learned = LearnedPolicy(load_file(), model)

    def run(policy: str) -> dict[str, Any]:
        timings: list[float] = []
        outcomes: dict[str, int] = {}
        for r in range(rounds):
            for p, state in people:
                trigger = EventFacts(event_id=f"e{r}", type="view", channel="app", ts=T0 + r, item_id="c1")
                ctx = DecisionContext(
                    profile=p,
                    now=T0 + r,
                    rng=random.Random(r),
                    trigger=trigger,
                    contact=state,
                    consent=p.consented,
                    control_share=0.05,
                    recommendations=lambda: recs,
                )
                t = time.perf_counter()
                v = decide(ctx) if policy == "rule" else learned.decide(ctx)[0]
                timings.append(time.perf_counter() - t)
                outcomes[v.outcome] = outcomes.get(v.outcome, 0) + 1
        timings.sort()
        return {
            "mean_us": round(statistics.fmean(timings) * 1e6, 1),
            "p50_us": round(timings[len(timings) // 2] * 1e6, 1),
            "p99_us": round(timings[int(len(timings) * 0.99)] * 1e6, 1),
            "outcomes": outcomes,
        }

    return {
        "users": users,
        "rounds": rounds,
        "contact_check_us": round(check_us, 2),
        "rule": run("rule"),
        "learned": run("learned"),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/decision.json")
    args = ap.parse_args()
    result = main(args.users, args.rounds, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
