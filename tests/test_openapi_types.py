"""The web UI's API types cannot drift from the server.

``web/openapi.json`` must be the document the code renders now (``ssechat.api.openapi``), and
``web/generated/api.ts`` what openapi-typescript makes of that document, run with the very command
of the UI's ``gen:api`` npm script. When either test fails, regenerate both and commit them::

    .venv/bin/python -m ssechat.api.openapi web/openapi.json
    cd web && npm run gen:api

The second test needs ``web/node_modules`` (``make test`` installs it) and fails without it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from ssechat.api import openapi

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
REGENERATE = (
    "regenerate with `.venv/bin/python -m ssechat.api.openapi web/openapi.json` "
    "then `cd web && npm run gen:api`"
)


def gen_api_command() -> tuple[list[str], str]:
    """The ``gen:api`` script's arguments after the program name, and the file it writes."""
    scripts = json.loads((WEB / "package.json").read_text(encoding="utf-8"))["scripts"]
    argv = shlex.split(scripts["gen:api"])
    assert argv[0] == "openapi-typescript", scripts["gen:api"]
    assert "openapi.json" in argv, "gen:api must read web/openapi.json"
    flag = next(flag for flag in ("-o", "--output") if flag in argv)
    return argv[1:], argv[argv.index(flag) + 1]


def test_committed_document_is_the_servers() -> None:
    committed = (WEB / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi.render(), (
        f"web/openapi.json differs from the server's: {REGENERATE}"
    )


def test_committed_types_are_generated_from_the_servers_document(tmp_path: Path) -> None:
    program = WEB / "node_modules" / ".bin" / "openapi-typescript"
    assert program.exists(), "web/node_modules is missing: run `cd web && npm ci` (make test does)"
    args, output = gen_api_command()
    # The script's relative paths, laid out in a scratch directory: nothing in web/ is written.
    (tmp_path / "openapi.json").write_text(openapi.render(), encoding="utf-8")
    (tmp_path / output).parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(program), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    generated = (tmp_path / output).read_text(encoding="utf-8")
    committed = (WEB / output).read_text(encoding="utf-8")
    assert committed == generated, f"web/{output} differs from the server's document: {REGENERATE}"
