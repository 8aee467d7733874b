"""An axe-core audit of a page (WCAG 2.1 A and AA rules), with a readable list of violations.

axe-core comes from the web UI's devDependencies (``web/node_modules/axe-core``). Its source is
evaluated through the DevTools protocol, which the page's Content-Security-Policy
(``script-src 'self'``) does not govern, so the page is audited exactly as it is served: no
``bypass_csp``, no script tag added to the document.

This module must never change the page beyond defining ``window.axe``, nor hide a violation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE_JS = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

_RUN = """
async (tags) => {
  const result = await window.axe.run(document, {
    runOnly: { type: "tag", values: tags },
    resultTypes: ["violations"],
  });
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
  }));
}
"""


def _source() -> str:
    if not AXE_JS.is_file():
        raise AssertionError(f"axe-core is not installed ({AXE_JS}): run `npm --prefix web ci`")
    return AXE_JS.read_text(encoding="utf-8")


def violations(page: Any) -> list[dict[str, Any]]:
    """The page's WCAG 2.1 A/AA violations, as axe-core reports them."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_source())
    found: list[dict[str, Any]] = page.evaluate(_RUN, WCAG_TAGS)
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """One line per violation and one per element it was found on."""
    lines = []
    for violation in found:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = " ".join(str(node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than its window (0: no horizontal scrolling)."""
    width: int = page.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
    return max(0, width)
