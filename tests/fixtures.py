"""Where the shared test data lives: ``shared/`` beside the repository (as CI lays it out)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "fixtures"
OPENAI_STREAMS = SHARED / "openai-streams"
XSS = SHARED / "xss"

if not OPENAI_STREAMS.is_dir():  # pragma: no cover - a checkout without shared/ beside it
    raise RuntimeError(f"test data not found at {OPENAI_STREAMS}: shared/ must sit beside the repo")
