"""Jobs and schedules defined in code: ``App``, ``app.job``, ``app.schedule``.

These names are the contract users' code depends on (design 4.1). Definitions are
validated as they are made (names, cron, timezone) and as a whole by ``App.validate``
(dependencies, groups, cycles), each failure one ``DefinitionError`` naming the offender.
This module imports nothing heavy: the CLI loads it for every subcommand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from jobsys.errors import CronError, DefinitionError
from jobsys.retries import MAX_BACKOFF, MAX_RETRIES, RetryPolicy
from jobsys.vocabulary import BatchMode, MissedPolicy, OverlapPolicy, values

PARAM_TYPES = ("string", "integer", "number", "boolean")
DEFAULT_GRACE_S = 60
#: How a job's runs are isolated (design 6.5): a warm pool worker, or a fresh process.
ISOLATIONS = ("pool", "process")
DEFAULT_MAX_CATCH_UP_S = 3600

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}
_PY_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class JobLogger(Protocol):
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...


class JobContext(Protocol):
    """What a job function receives (implemented by ``runtime``, around the run's ``RunSpec``)."""

    run_id: int
    batch_id: int
    job_name: str
    params: dict[str, Any]
    trigger: str
    schedule_id: str | None
    scheduled_for: datetime | None
    database_url: str
    log: JobLogger

    def progress(self, done: int, total: int | None = None) -> None: ...

    @property
    def cancelled(self) -> bool: ...


JobFunc = Callable[[Any], Any]


@dataclass(frozen=True)
class JobDef:
    name: str
    func: JobFunc = field(repr=False, compare=False)
    group: str
    depends_on: tuple[str, ...] = ()
    description: str = ""
    timeout_s: float | None = None
    params: Mapping[str, Mapping[str, Any]] | None = None
    #: Bytes of resident memory the job's process may use (``memory_limit="2G"``).
    memory_limit: int | None = None
    #: Automatic retries of a failed run (``retries=3, retry_delay="30s", ...``).
    retry: RetryPolicy | None = None
    #: ``"pool"`` (a warm worker) or ``"process"`` (a fresh process per run); None:
    #: the application's ``JOBSYS_ISOLATION``.
    isolation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "group": self.group,
            "description": self.description,
            "depends_on": list(self.depends_on),
            "timeout_s": self.timeout_s,
            "params": {k: dict(v) for k, v in self.params.items()} if self.params else None,
        }
        if self.memory_limit is not None:  # absent otherwise: older definitions unchanged
            out["memory_limit"] = format_bytes(self.memory_limit)
        if self.retry is not None:  # likewise
            out["retry"] = self.retry.to_dict()
        if self.isolation is not None:  # likewise
            out["isolation"] = self.isolation
        return out


# Slots: an app may define thousands of schedules, held by the daemon, its fork server
# and every worker (~55 bytes less each than an instance dict; issue 9 item 5).
@dataclass(frozen=True, slots=True)
class ScheduleDef:
    id: str
    cron: str
    name: str
    description: str = ""
    timezone: str = "UTC"
    mode: str = BatchMode.ALL_JOBS.value
    group: str | None = None
    environments: tuple[str, ...] | None = None
    missed: str = MissedPolicy.SKIP.value
    max_catch_up_s: int | None = None
    overlap: str = OverlapPolicy.SKIP.value
    grace_s: int = DEFAULT_GRACE_S
    # issue 10 items 4, 5, 7: see App.schedule
    job: str | None = None
    params: dict[str, Any] | None = field(default=None, hash=False)
    pause_on_failure: int | None = None
    jitter_s: int = 0

    def active_in(self, env: str) -> bool:
        return self.environments is None or env in self.environments

    @property
    def allow_overlap(self) -> bool:
        """Deprecated: ``overlap == "ALLOW"``."""
        return self.overlap == OverlapPolicy.ALLOW


def parse_duration(value: str | float | int | None, what: str) -> float | None:
    """``"30m"``, ``"1h"``, ``"90s"``, ``"500ms"`` or a number of seconds; ``None`` stays."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DefinitionError(f"{what}: duration {value!r} is not valid")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise DefinitionError(
                f"{what}: duration {value!r} is not valid (use e.g. 90s, 30m, 2h)"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise DefinitionError(f"{what}: duration {value!r} must be positive")
    return seconds


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: str | int | None, what: str) -> int | None:
    """``"512M"``, ``"2G"``, ``"1.5G"`` (binary units: 1K = 1024) or a number of bytes."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DefinitionError(f"{what}: size {value!r} is not valid (use e.g. 512M, 2G)")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(value)
        if not match:
            raise DefinitionError(f"{what}: size {value!r} is not valid (use e.g. 512M, 2G)")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    if size <= 0:
        raise DefinitionError(f"{what}: size {value!r} must be positive")
    return size


def format_bytes(size: float) -> str:
    """``2147483648`` → ``"2G"``, ``2254857830`` → ``"2.1G"``."""
    for unit in ("T", "G", "M", "K"):
        scale = _SIZE_UNITS[unit]
        if size >= scale:
            text = f"{size / scale:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return f"{int(size)}B"


def _normalize_params(
    job: str, params: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]] | None:
    """Turn ``{"fail": bool}`` or ``{"fail": {"type": "boolean", ...}}`` into the second form."""
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise DefinitionError(f"job {job!r}: params must be a mapping of name to type")
    out: dict[str, dict[str, Any]] = {}
    for pname, spec in params.items():
        if not isinstance(pname, str) or not pname.isidentifier():
            raise DefinitionError(f"job {job!r}: param name {pname!r} is not an identifier")
        if isinstance(spec, type):
            if spec not in _PY_TYPES:
                raise DefinitionError(
                    f"job {job!r}: param {pname!r} has unsupported type {spec.__name__}"
                )
            out[pname] = {"type": _PY_TYPES[spec]}
            continue
        if not isinstance(spec, Mapping):
            raise DefinitionError(f"job {job!r}: param {pname!r} must be a type or a mapping")
        ptype = spec.get("type", "string")
        if isinstance(ptype, type):
            ptype = _PY_TYPES.get(ptype, repr(ptype))
        if ptype not in PARAM_TYPES:
            raise DefinitionError(
                f"job {job!r}: param {pname!r} type {ptype!r} is not one of "
                f"{', '.join(PARAM_TYPES)}"
            )
        entry = {"type": ptype, **{k: v for k, v in spec.items() if k != "type"}}
        _check_limits(f"job {job!r}: param {pname!r}", ptype, entry)
        if "default" in entry:
            if check_param_value(ptype, entry["default"]) is not None:
                raise DefinitionError(
                    f"job {job!r}: param {pname!r} default does not match type {ptype}"
                )
            why = check_param_limits(entry, entry["default"])
            if why:
                raise DefinitionError(f"job {job!r}: param {pname!r} default {why}")
        out[pname] = entry
    return out


#: Other spellings the UI's form has always understood, and the one the server keeps.
_LIMIT_ALIASES = {"enum": "choices", "min": "minimum", "max": "maximum"}


def _check_limits(where: str, ptype: str, entry: dict[str, Any]) -> None:
    """Check (in place: one spelling each) a param's ``choices``, ``minimum``/``maximum``
    and ``pattern``, so that a bad declaration fails when the app loads, not as a server
    error when someone runs the job."""
    for alias, key in _LIMIT_ALIASES.items():
        if alias in entry:
            if key in entry:
                raise DefinitionError(f"{where}: give {key!r} or {alias!r}, not both")
            entry[key] = entry.pop(alias)
    choices = entry.get("choices")
    if choices is not None:
        if not isinstance(choices, list | tuple) or not choices:
            raise DefinitionError(f"{where}: choices must be a non-empty list")
        for choice in choices:
            if check_param_value(ptype, choice) is not None:
                raise DefinitionError(f"{where}: choice {choice!r} is not of type {ptype}")
        entry["choices"] = list(choices)
    for key in ("minimum", "maximum"):
        bound = entry.get(key)
        if bound is None:
            continue
        if ptype not in ("integer", "number"):
            raise DefinitionError(f"{where}: {key} applies to integer and number params only")
        if isinstance(bound, bool) or not isinstance(bound, int | float) or math.isnan(bound):
            raise DefinitionError(f"{where}: {key} {bound!r} is not a number")
    low, high = entry.get("minimum"), entry.get("maximum")
    if low is not None and high is not None and low > high:
        raise DefinitionError(f"{where}: minimum {low} is above maximum {high}")
    pattern = entry.get("pattern")
    if pattern is not None:
        if ptype != "string":
            raise DefinitionError(f"{where}: pattern applies to string params only")
        if not isinstance(pattern, str):
            raise DefinitionError(f"{where}: pattern must be a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DefinitionError(
                f"{where}: pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from None


def check_param_value(ptype: str, value: Any) -> str | None:
    """Return why ``value`` is not of ``ptype``, or None when it is."""
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[ptype]
    return None if ok else f"expected {ptype}, got {_json_kind(value)}"


def _json_kind(value: Any) -> str:
    """The JSON name of a value's type (what an API or CLI user typed)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for py, name in ((int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, py):
            return name
    return "object" if isinstance(value, dict) else type(value).__name__


def check_param_limits(spec: Mapping[str, Any], value: Any) -> str | None:
    """Return why ``value`` breaks the param's ``choices``/``minimum``/``maximum``/
    ``pattern`` (the same checks the UI's form makes), or None."""
    choices = spec.get("choices")
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(map(str, choices))}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.get("minimum") is not None and value < spec["minimum"]:
            return f"must be at least {spec['minimum']}"
        if spec.get("maximum") is not None and value > spec["maximum"]:
            return f"must be at most {spec['maximum']}"
    pattern = spec.get("pattern")
    if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
        return f"must match the pattern {pattern}"
    return None


def default_params(job: JobDef) -> dict[str, Any] | None:
    """The declared defaults, for runs nobody gave params to (schedules, run all)."""
    if not job.params:
        return None
    return {name: spec["default"] for name, spec in job.params.items() if "default" in spec}


def validate_params(job: JobDef, params: Any) -> dict[str, Any]:
    """Check run parameters against the job's declared params; return them with defaults.

    Params are always a JSON object. A job without declared params takes any object.
    """
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DefinitionError(f"job {job.name!r}: params must be a JSON object")
    if job.params is None:
        return dict(params)
    unknown = sorted(set(params) - set(job.params))
    if unknown:
        raise DefinitionError(f"job {job.name!r}: unknown param(s): {', '.join(unknown)}")
    result: dict[str, Any] = {}
    for pname, spec in job.params.items():
        if pname in params:
            why = check_param_value(spec["type"], params[pname]) or check_param_limits(
                spec, params[pname]
            )
            if why:
                raise DefinitionError(f"job {job.name!r}: param {pname!r}: {why}")
            result[pname] = params[pname]
        elif "default" in spec:
            result[pname] = spec["default"]
        elif spec.get("required"):
            raise DefinitionError(f"job {job.name!r}: param {pname!r} is required")
    return result


def _retry_policy(
    job: str,
    retries: Any,
    delay: Any,
    backoff: Any,
    max_delay: Any,
    jitter: Any,
) -> RetryPolicy | None:
    """Check a job's retry options; None when it does not retry (``retries=0``)."""
    where = f"job {job!r}"
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise DefinitionError(f"{where}: retries must be an int 0..{MAX_RETRIES}, got {retries!r}")
    delay_s = parse_duration(delay, f"{where}: retry_delay")
    max_delay_s = parse_duration(max_delay, f"{where}: retry_max_delay")
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, int | float)
        or not 1.0 <= backoff <= MAX_BACKOFF
    ):
        raise DefinitionError(
            f"{where}: retry_backoff must be a number 1..{MAX_BACKOFF:g}, got {backoff!r}"
        )
    if not isinstance(jitter, bool):
        raise DefinitionError(f"{where}: retry_jitter must be true or false, got {jitter!r}")
    if delay_s is None or max_delay_s is None:
        raise DefinitionError(f"{where}: retry_delay and retry_max_delay must be durations")
    if max_delay_s < delay_s:
        raise DefinitionError(
            f"{where}: retry_max_delay {max_delay!r} is shorter than retry_delay {delay!r}"
        )
    if retries == 0:
        return None
    return RetryPolicy(retries, delay_s, float(backoff), max_delay_s, jitter)


def _overlap_policy(label: str, overlap: Any, allow_overlap: Any) -> str:
    """The schedule's overlap policy from ``overlap`` or the deprecated ``allow_overlap``."""
    if allow_overlap is not None:
        if overlap is not None:
            raise DefinitionError(f"{label}: give overlap or allow_overlap (deprecated), not both")
        if not isinstance(allow_overlap, bool):
            raise DefinitionError(f"{label}: allow_overlap {allow_overlap!r} is not true or false")
        return (OverlapPolicy.ALLOW if allow_overlap else OverlapPolicy.SKIP).value
    if overlap is None:
        return OverlapPolicy.SKIP.value
    if overlap not in values(OverlapPolicy):
        raise DefinitionError(
            f"{label}: overlap {overlap!r} is not one of {', '.join(values(OverlapPolicy))}"
        )
    return OverlapPolicy(overlap).value


def _schedule_job(
    label: str, mode: str, group: str | None, job: str | None, params: Any
) -> dict[str, Any] | None:
    """Check ``job``/``params`` against the mode (the params against the job's
    declarations later, in ``App.validate``: the job may be defined after the schedule)."""
    if mode != BatchMode.JOB:
        if job is not None:
            raise DefinitionError(f"{label}: job {job!r} given but mode is {mode} (use mode='JOB')")
        if params is not None:
            raise DefinitionError(f"{label}: params are only accepted with mode='JOB'")
        return None
    if not job or not isinstance(job, str):
        raise DefinitionError(f"{label}: mode JOB needs a job")
    if group:
        raise DefinitionError(f"{label}: group {group!r} given but mode is JOB")
    if params is None:
        return None
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise DefinitionError(f"{label}: params must be a mapping of param name to value")
    return dict(params)


def _pause_on_failure(label: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DefinitionError(f"{label}: pause_on_failure {value!r} must be a whole number >= 1")
    return value


def _jitter_seconds(label: str, value: str | float | int | None) -> int:
    seconds = parse_duration(value, f"{label}: jitter")
    if seconds is None:
        return 0
    if seconds < 1 or seconds != int(seconds):
        raise DefinitionError(f"{label}: jitter {value!r} must be whole seconds (e.g. 30s, 5m)")
    return int(seconds)


def schedule_params(app: App, sched: ScheduleDef) -> dict[str, Any]:
    """The params a mode JOB schedule's runs get (its params checked against the job's
    declared params, defaults applied); ``DefinitionError`` names the schedule."""
    job = app.jobs.get(sched.job or "")
    if job is None:
        raise DefinitionError(f"schedule {sched.id!r}: unknown job {sched.job!r}")
    try:
        return validate_params(job, sched.params)
    except DefinitionError as exc:
        raise DefinitionError(f"schedule {sched.id!r}: {exc}") from None


class App:
    """A registry of jobs and schedules (an object, never a module global)."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.jobs: dict[str, JobDef] = {}
        self.schedules: dict[str, ScheduleDef] = {}

    # -- definitions -------------------------------------------------------------------
    def job(
        self,
        name: str | None = None,
        *,
        group: str,
        depends_on: Iterable[str] = (),
        description: str = "",
        timeout: str | float | int | None = None,
        params: Mapping[str, Any] | None = None,
        memory_limit: str | int | None = None,
        retries: int = 0,
        retry_delay: str | float | int = "30s",
        retry_backoff: float = 2.0,
        retry_max_delay: str | float | int = "1h",
        retry_jitter: bool = False,
        isolation: str | None = None,
    ) -> Callable[[JobFunc], JobFunc]:
        """Register the decorated function as a job (its name defaults to the function's).

        ``memory_limit`` (e.g. ``"512M"``, ``"2G"``): a run whose process's resident
        memory passes it is killed and FAILED with the reason. ``retries`` (0..100): a
        failed attempt is tried again after the back-off (see ``jobsys.retries``).
        ``isolation``: ``"pool"`` runs it in a warm worker process, ``"process"`` in a
        fresh process per run; by default the application's ``JOBSYS_ISOLATION``."""

        def register(func: JobFunc) -> JobFunc:
            job_name: str = name or str(getattr(func, "__name__", ""))
            self._check_name("job", job_name)
            if job_name in self.jobs:
                raise DefinitionError(f"duplicate job name {job_name!r}")
            if not isinstance(group, str) or not _NAME_RE.match(group):
                raise DefinitionError(f"job {job_name!r}: group {group!r} is not a valid name")
            deps = (depends_on,) if isinstance(depends_on, str) else tuple(depends_on)
            if len(set(deps)) != len(deps):
                raise DefinitionError(f"job {job_name!r}: depends_on lists a job twice")
            if job_name in deps:
                raise DefinitionError(f"dependency cycle: {job_name} -> {job_name}")
            if isolation is not None and isolation not in ISOLATIONS:
                raise DefinitionError(
                    f"job {job_name!r}: isolation {isolation!r} is not one of: "
                    + ", ".join(ISOLATIONS)
                )
            self.jobs[job_name] = JobDef(
                name=job_name,
                func=func,
                group=group,
                depends_on=deps,
                description=description or (func.__doc__ or "").strip().split("\n")[0],
                timeout_s=parse_duration(timeout, f"job {job_name!r}: timeout"),
                params=_normalize_params(job_name, params),
                memory_limit=parse_size(memory_limit, f"job {job_name!r}: memory_limit"),
                retry=_retry_policy(
                    job_name, retries, retry_delay, retry_backoff, retry_max_delay, retry_jitter
                ),
                isolation=isolation,
            )
            return func

        return register

    def schedule(
        self,
        id: str,
        *,
        cron: str,
        name: str | None = None,
        description: str = "",
        timezone: str = "UTC",
        mode: str = BatchMode.ALL_JOBS,
        group: str | None = None,
        environments: Iterable[str] | None = None,
        missed: str = MissedPolicy.SKIP,
        max_catch_up: str | float | int | None = None,
        overlap: str | None = None,
        grace: str | float | int | None = None,
        allow_overlap: bool | None = None,
        job: str | None = None,
        params: Mapping[str, Any] | None = None,
        pause_on_failure: int | None = None,
        jitter: str | float | int | None = None,
    ) -> ScheduleDef:
        """Register a schedule; new schedules start disabled in the database.

        ``overlap`` (default ``SKIP``) says what a slot does while the previous batch
        still runs; ``allow_overlap=True`` is the deprecated spelling of ``"ALLOW"``.
        ``mode="JOB", job=..., params={...}``: each slot runs that one job with those
        params (checked against the job's declared params by ``validate``).
        ``pause_on_failure=N``: the daemon disables the schedule after N failed batches
        in a row. ``jitter="30s"``: each slot starts up to that much later, by an offset
        fixed per slot."""
        from jobsys.cron import validate as validate_cron  # lazy: cron pulls croniter

        self._check_name("schedule", id)
        if id in self.schedules:
            raise DefinitionError(f"duplicate schedule id {id!r}")
        label = f"schedule {id!r}"
        try:
            validate_cron(cron, timezone)
        except CronError as exc:
            raise CronError(f"{label}: {exc}") from None
        modes = [m.value for m in BatchMode if m.schedulable]
        if mode not in modes:
            raise DefinitionError(f"{label}: mode {mode!r} is not one of {', '.join(modes)}")
        if mode == BatchMode.GROUP and not group:
            raise DefinitionError(f"{label}: mode GROUP needs a group")
        if mode == BatchMode.ALL_JOBS and group:
            raise DefinitionError(
                f"{label}: group {group!r} given but mode is ALL_JOBS (use mode='GROUP')"
            )
        job_params = _schedule_job(label, mode, group, job, params)
        pause_after = _pause_on_failure(label, pause_on_failure)
        jitter_s = _jitter_seconds(label, jitter)
        if missed not in values(MissedPolicy):
            raise DefinitionError(
                f"{label}: missed {missed!r} is not one of {', '.join(values(MissedPolicy))}"
            )
        envs = None
        if environments is not None:
            envs = (environments,) if isinstance(environments, str) else tuple(environments)
            if not envs:
                raise DefinitionError(f"{label}: environments is empty (omit it to run everywhere)")
        catch_up = parse_duration(max_catch_up, f"{label}: max_catch_up")
        grace_s = parse_duration(grace, f"{label}: grace")
        if missed == MissedPolicy.SKIP and max_catch_up is not None:
            raise DefinitionError(f"{label}: max_catch_up only applies with missed='RUN_ONCE'")
        overlap = _overlap_policy(label, overlap, allow_overlap)
        sched = ScheduleDef(
            id=id,
            cron=cron.strip(),
            name=name or id,
            description=description,
            timezone=timezone,
            mode=BatchMode(mode).value,
            group=group,
            environments=envs,
            missed=MissedPolicy(missed).value,
            max_catch_up_s=(
                int(catch_up)
                if catch_up is not None
                else (DEFAULT_MAX_CATCH_UP_S if missed == MissedPolicy.RUN_ONCE else None)
            ),
            overlap=overlap,
            grace_s=int(grace_s) if grace_s is not None else DEFAULT_GRACE_S,
            job=job,
            params=job_params,
            pause_on_failure=pause_after,
            jitter_s=jitter_s,
        )
        self.schedules[id] = sched
        return sched

    @staticmethod
    def _check_name(kind: str, name: Any) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise DefinitionError(
                f"{kind} name {name!r} is not valid (letters, digits, _ . : -, up to 100 chars)"
            )

    # -- whole-app validation ----------------------------------------------------------
    @property
    def groups(self) -> list[str]:
        return sorted({job.group for job in self.jobs.values()})

    def validate(self) -> App:
        """Check references and cycles; raise one DefinitionError naming the offender."""
        for job in self.jobs.values():
            for dep in job.depends_on:
                if dep not in self.jobs:
                    raise DefinitionError(f"job {job.name!r} depends on unknown job {dep!r}")
        cycle = self._find_cycle()
        if cycle:
            raise DefinitionError("dependency cycle: " + " -> ".join(cycle))
        groups = set(self.groups)
        for sched in self.schedules.values():
            if sched.mode == BatchMode.GROUP and sched.group not in groups:
                known = ", ".join(sorted(groups)) or "none"
                raise DefinitionError(
                    f"schedule {sched.id!r}: unknown group {sched.group!r} (known groups: {known})"
                )
            if sched.mode == BatchMode.JOB:
                schedule_params(self, sched)  # raises naming the schedule
        return self

    def _find_cycle(self) -> list[str] | None:
        """Depth-first search; returns the cycle as a path that ends where it starts."""
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        stack: list[str] = []

        def visit(name: str) -> list[str] | None:
            state[name] = 1
            stack.append(name)
            for dep in self.jobs[name].depends_on:
                if state.get(dep) == 1:
                    return [*stack[stack.index(dep) :], dep]
                if dep not in state:
                    found = visit(dep)
                    if found:
                        return found
            stack.pop()
            state[name] = 2
            return None

        for name in self.jobs:
            if name not in state:
                found = visit(name)
                if found:
                    return found
        return None

    # -- planning ----------------------------------------------------------------------
    def ordered(self, names: Iterable[str] | None = None) -> list[str]:
        """The named jobs (default all) in dependency order; ties keep definition order."""
        wanted = None if names is None else set(names)
        chosen = list(self.jobs) if wanted is None else [n for n in self.jobs if n in wanted]
        chosen_set = set(chosen)
        index = {name: i for i, name in enumerate(chosen)}  # definition order among them
        waiting = {n: {d for d in self.jobs[n].depends_on if d in chosen_set} for n in chosen}
        done: list[str] = []
        ready = sorted((n for n, deps in waiting.items() if not deps), key=index.__getitem__)
        while ready:
            name = ready.pop(0)
            done.append(name)
            for other, deps in waiting.items():
                if name in deps:
                    deps.discard(name)
                    if not deps and other not in done and other not in ready:
                        ready.append(other)
            ready.sort(key=index.__getitem__)
        if len(done) != len(chosen):  # unreachable after validate(); kept as a guard
            raise DefinitionError(
                "dependency cycle among: " + ", ".join(sorted(chosen_set - set(done)))
            )
        return done

    def plan(
        self,
        *,
        mode: str,
        group: str | None = None,
        job: str | None = None,
        skip_dependencies: bool = False,
    ) -> list[tuple[str, tuple[str, ...]]]:
        """The jobs a batch runs, in order, each with the jobs (in the batch) it waits for.

        ``ALL_JOBS``: every job. ``GROUP``: the group's jobs; dependencies outside the
        group are not run. ``JOB``: that one job alone. ``skip_dependencies`` drops the
        edges so nothing waits and one failure skips nothing.
        """
        if mode == BatchMode.ALL_JOBS:
            names = list(self.jobs)
        elif mode == BatchMode.GROUP:
            if not any(j.group == group for j in self.jobs.values()):
                raise DefinitionError(f"unknown group {group!r}")
            names = [n for n, j in self.jobs.items() if j.group == group]
        elif mode == BatchMode.JOB:
            if job not in self.jobs:
                raise DefinitionError(f"unknown job {job!r}")
            names = [job]
        else:
            raise DefinitionError(f"unknown mode {mode!r}")
        ordered = self.ordered(names)
        members = set(ordered)
        return [
            (
                n,
                ()
                if skip_dependencies
                else tuple(d for d in self.jobs[n].depends_on if d in members),
            )
            for n in ordered
        ]

    def get_job(self, name: str) -> JobDef:
        try:
            return self.jobs[name]
        except KeyError:
            raise DefinitionError(f"unknown job {name!r}") from None
