"""One run to execute, as a single record from the claim to the job's ``ctx``.

``store.runs.claim_runnable`` returns these; the daemon completes each with what the
store does not know (validated params, database URL, keep-alive, memory limit) and
hands it to the executor; the fork server receives it as JSON; the job's ``ctx`` wraps
it (see ``runtime``). A leaf module: it imports nothing from jobsys, so the store, the
executor and the process that runs the job can all share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    run_id: int
    batch_id: int
    job_name: str
    params: dict[str, Any]
    trigger: str
    schedule_id: str | None
    scheduled_for: datetime | None
    #: What ``ctx.database_url`` gives the job; set by the daemon (not a run's column).
    database_url: str = ""
    timeout_s: float | None = None
    #: The run stops itself when the daemon's keep-alive is older than this (see
    #: ``forking.KeepAlive``); None: never.
    keepalive_s: float | None = None
    #: Bytes of resident memory the job's process may use; None: no limit.
    memory_limit: int | None = None
    #: When the claim marked the run RUNNING (None for a run not claimed from the
    #: database). Parent side only: ``to_json`` leaves it out, the job has no use for it.
    started_at: datetime | None = None

    def to_json(self) -> bytes:
        """The record for another process (the fork server)."""
        return json.dumps(
            {
                "run_id": self.run_id,
                "batch_id": self.batch_id,
                "job_name": self.job_name,
                "params": self.params,
                "trigger": self.trigger,
                "schedule_id": self.schedule_id,
                "scheduled_for": None
                if self.scheduled_for is None
                else self.scheduled_for.isoformat(),
                "database_url": self.database_url,
                "timeout_s": self.timeout_s,
                "keepalive_s": self.keepalive_s,
                "memory_limit": self.memory_limit,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RunSpec:
        raw = json.loads(data)
        when = raw["scheduled_for"]
        return cls(
            run_id=int(raw["run_id"]),
            batch_id=int(raw["batch_id"]),
            job_name=str(raw["job_name"]),
            params=dict(raw["params"] or {}),
            trigger=str(raw["trigger"]),
            schedule_id=raw["schedule_id"],
            scheduled_for=None if when is None else datetime.fromisoformat(when),
            database_url=str(raw["database_url"]),
            timeout_s=raw["timeout_s"],
            keepalive_s=raw.get("keepalive_s"),
            memory_limit=raw.get("memory_limit"),
        )
