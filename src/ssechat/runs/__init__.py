"""Server-side generation runs and their event logs."""

from ssechat.runs.log import MemoryRunLog, RunLog
from ssechat.runs.manager import (
    AnswerStore,
    LogFactory,
    Run,
    RunManager,
    RunSpec,
    RunStatus,
    Subscription,
)

__all__ = [
    "AnswerStore",
    "LogFactory",
    "MemoryRunLog",
    "Run",
    "RunLog",
    "RunManager",
    "RunSpec",
    "RunStatus",
    "Subscription",
]
