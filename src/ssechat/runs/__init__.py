"""Server-side generation runs and their event logs."""

from ssechat.runs.log import MemoryRunLog, RunLog
from ssechat.runs.manager import AnswerStore, Run, RunManager, RunSpec, RunStatus

__all__ = ["AnswerStore", "MemoryRunLog", "Run", "RunLog", "RunManager", "RunSpec", "RunStatus"]
