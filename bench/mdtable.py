"""Markdown cells and tables for the benchmark's report (``bench.report``, ``bench.report_store``).
Pure: values in, text out."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt", "table"]


def fmt(value: Any, unit: str = "") -> str:
    """A table cell: a dash for nothing, yes/no, thousands separated, short floats."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text}{unit}"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines, and an empty line after it."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]
