"""Successive halving (lab.halving): the search both recorders of the evaluation tune with."""

from __future__ import annotations

import random

import pytest

from lab.halving import Halving


def test_the_best_configuration_survives_and_every_survivor_scored_the_same_targets() -> None:
    rates = {f"c{n}": 0.05 + 0.01 * n for n in range(32)}  # c31 is best, by 0.01 over c30
    rng = random.Random(7)
    search = Halving(list(rates), rung=200, floor=4)
    cost = 0
    for _ in range(20_000):
        draw = rng.random()  # one target: the same draw for every configuration (paired)
        cost += len(search.alive)
        search.add({c: draw < rates[c] for c in search.alive})
    assert search.best() == "c31"
    assert len(search.alive) == 4 and {"c30", "c31"} <= set(search.alive)
    assert len({search.scored(c) for c in search.alive}) == 1  # paired: the survivors scored every target
    assert search.scored("c31") == 20_000 and min(search.scored(c) for c in rates) == 200
    assert cost < 0.2 * 32 * 20_000  # a fifth of scoring every configuration on every target


def test_rungs_double_and_ties_keep_grid_order() -> None:
    search = Halving(["a", "b", "c", "d", "e", "f", "g", "h"], rung=3, floor=2)
    for _ in range(3):
        search.add(dict.fromkeys(search.alive, True))  # all tied: the first half stays
    assert search.alive == ["a", "b", "c", "d"]
    for _ in range(5):
        search.add(dict.fromkeys(search.alive, False))
    assert search.alive == ["a", "b", "c", "d"]  # the second rung is 6 long
    search.add({"a": False, "b": False, "c": True, "d": True})
    assert search.alive == ["c", "d"] and search.best() == "c"


def test_dropped_configurations_are_never_scored() -> None:
    search = Halving(["a", "b", "c"], rung=10, floor=1)
    search.drop(["b"])
    search.add({"a": True, "c": False})
    assert search.configs == ["a", "c"] and search.scored("b") == 0
    with pytest.raises(ValueError):
        search.drop(["a", "c"])
    with pytest.raises(ValueError):
        Halving([])


def test_nothing_is_dropped_during_the_warm_up() -> None:
    search = Halving(["a", "b", "c", "d"], rung=2, floor=1)
    for _ in range(10):
        search.add({"a": False, "b": False, "c": True, "d": True}, warm=True)
    assert search.alive == ["a", "b", "c", "d"]
    for _ in range(2):
        search.add({"a": True, "b": True, "c": False, "d": False})  # after the warm-up: the first rung
    assert search.alive == ["c", "d"] and search.scored("a") == 12
