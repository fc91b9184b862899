"""The runnable examples in the docstrings of ``models``, ``schemas`` and the worker-side modules
that have them hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import models
import schemas

MODULES = sorted(
    [
        info.name
        for package in (models, schemas)
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}.")
    ]
    # the worker-side modules with examples
    + ["agents.dlq", "agents.ingest", "app.logs", "app.security", "app.web"]
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
