"""Keeps the README's generated tables (topics, environment) in step with the code: ``make readme``."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings, env_table
from app.topics import topic_table

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> dict[str, str]:
    return {"topics": topic_table(Settings(_env_file=None)), "env": env_table()}


def render(text: str) -> str:
    for name, table in blocks().items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- {name}:begin --> ... <!-- {name}:end --> block")
        text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)  # noqa: B023 (used at once)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
