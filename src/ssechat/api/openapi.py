"""The API's OpenAPI document, written without a running server.

``python -m ssechat.api.openapi [PATH]`` writes it (sorted keys, two-space indent, a final
newline) to PATH, or to standard output. The web UI's TypeScript types are generated from the
committed copy (``web/openapi.json``), and a test fails when that copy and the code drift apart.
It must never open the store or reach the upstream: it only reads the routes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ssechat.api import create_app
from ssechat.config import Settings

__all__ = ["document", "main", "render"]


def document() -> dict[str, Any]:
    """The OpenAPI document of the app's routes (the lifespan is not run)."""
    app = create_app(Settings())
    return app.openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
