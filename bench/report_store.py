"""The search and import sections of ``RESULTS.md``, and their rows of the goals table. Pure: no
IO (``bench.report`` calls it; it lives apart to keep each module short)."""

from __future__ import annotations

from typing import Any

from bench.mdtable import fmt as _fmt
from bench.mdtable import table as _table

__all__ = ["import_section", "search_section", "store_goals"]

_DATABASES = (("ssechat", "SQLite"), ("ssechat-pg", "PostgreSQL"))
_SEARCH_HEAD = ["query", "hits on page 1", "requests", "p50 ms", "p95 ms", "max ms", "errors"]
_IMPORT_HEAD = ["file", "database", "size", "seconds", "MB/s", "conversations/s",
                "RSS before MiB", "peak RSS MiB", "peak - before MiB", "errors",
                "load average"]  # fmt: skip


def _goal(name: str, target: str, measured: Any, met: bool | None, where: str) -> dict[str, Any]:
    return {"goal": name, "target": target, "measured": measured, "where": where, "met": met}


def store_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """A search row per database measured, and an import memory row per database."""
    rows = []
    for peer, database in _DATABASES:
        run = (results.get("search") or {}).get(peer)
        if run:
            fill = run["fill"]
            worst = run["worst_p95_ms"]
            rows.append(_goal(
                f"search p95, worst query kind ({database})", f"< {run['goal_ms']:g} ms", worst,
                None if worst is None else worst < run["goal_ms"] and not run["errors"],
                f"{fill['conversations']:,} conversations / {fill['messages']:,} messages",
            ))  # fmt: skip
    imports = (results.get("import") or {}).get("runs") or {}
    for peer, database in _DATABASES:
        runs = [r for key, r in imports.items() if key.split()[0] == peer]
        peaks = [r["peak_over_before_mib"] for r in runs if r["peak_over_before_mib"] is not None]
        if runs and peaks:
            half = max(r["bytes"] for r in runs) / 2 / 2**20
            worst = max(peaks)
            rows.append(_goal(
                f"import: server peak RSS over its RSS before ({database})",
                f"< half the file ({half:,.0f} MiB)", worst,
                worst < half and not any(r["errors"] for r in runs),
                f"{max(r['bytes'] for r in runs) / 1e6:,.0f} MB ChatGPT export, JSON and zip",
            ))  # fmt: skip
    return rows


def search_section(results: dict[str, Any]) -> list[str]:
    found = results.get("search") or {}
    if not found:
        return []
    out = ["## 6. Search", ""]
    for peer, database in _DATABASES:
        run = found.get(peer)
        if not run:
            continue
        fill, sizes = run["fill"], run["sizes"]
        rows = [
            [f"{kind} `{k['query']}`", _fmt(k["hits_on_first_page"]), _fmt(k["requests"]),
             _fmt(k["p50_ms"]), _fmt(k["p95_ms"]), _fmt(k["max_ms"]), _fmt(k["errors"])]
            for kind, k in run["kinds"].items()
        ]  # fmt: skip
        overall = run["overall"]
        rows.append(["**all**", "", _fmt(overall["requests"]), _fmt(overall["p50_ms"]),
                     _fmt(overall["p95_ms"]), _fmt(overall["max_ms"]),
                     _fmt(run["errors"])])  # fmt: skip
        load = run["loadavg"]
        out += [
            f"### {database}",
            "",
            f"{fill['conversations']:,} conversations / {fill['messages']:,} messages of the "
            f"signed-in user, plus {fill['other_conversations']:,} / "
            f"{fill['other_messages']:,} of another user; {fill['text_mb']} MB of text "
            f"(questions ~{sizes['question_chars']} characters, answers "
            f"~{sizes['answer_chars']}); filled by direct inserts in {fill['fill_s']} s. "
            f"Page of {run['page']}; each kind {sizes['requests']} requests one after another "
            f"(at most {sizes['seconds']:g} s) after {sizes['warmup']} untimed. Load average "
            f"{' '.join(load['start'])} at the start, {' '.join(load['end'])} at the end.",
            "",
            *_table(_SEARCH_HEAD, rows),
            f"Goal: p95 under {run['goal_ms']:g} ms; worst kind: **{_fmt(run['worst_p95_ms'])} "
            "ms**.",
            "",
        ]
    return out


def import_section(results: dict[str, Any]) -> list[str]:
    found = results.get("import") or {}
    if not found.get("runs"):
        return []
    sizes = found["sizes"]
    rows = [
        [key.split()[1], run["database"], _fmt(round(run["bytes"] / 1e6, 1)) + " MB",
         _fmt(run["seconds"]),
         _fmt(run["mb_per_s"]), _fmt(run["conversations_per_s"]), _fmt(run["rss_before_mib"]),
         _fmt(run["peak_rss_mib"]), _fmt(run["peak_over_before_mib"]), _fmt(run["errors"]),
         " ".join(run["loadavg"])]
        for key, run in found["runs"].items()
    ]  # fmt: skip
    return [
        "## 7. Import of a big export",
        "",
        f"A ChatGPT export written by `bench/exports.py`: {sizes['conversations']:,} "
        f"conversations of {sizes['messages']} messages of ~{sizes['chars']} characters, as "
        "`conversations.json` and as its zip, `POST /api/import` streaming from disk into a "
        "fresh server. Seconds: from the first byte sent to the whole answer. RSS: the server "
        "process's (`VmRSS` before; `VmHWM` after resetting it with `clear_refs`); on "
        "PostgreSQL the database's memory is not in it.",
        "",
        *_table(_IMPORT_HEAD, rows),
    ]
