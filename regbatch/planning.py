"""What a job does next, decided from its step rows: run, skip (with the reason), or it is done.

Pure functions over the step graph; the restaurant subflow asks `next_decisions` after every step
that finishes, `job_outcome` when nothing is left to run, and `steps_to_rerun` before running a
failed job again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.statuses import STEP_ACTIVE, JobStatus, StepStatus
from regbatch.steps import BUILT_IN, StepGraph, StepKey


@dataclass(frozen=True)
class StepState:
    """What planning needs to know of one step row."""

    status: StepStatus
    result: dict[str, Any] | None = None
    blocked_by: str | None = None  # the failed step that caused a skip, if any


@dataclass(frozen=True)
class Run:
    key: str


@dataclass(frozen=True)
class Skip:
    key: str
    reason: str
    blocked_by: str | None = None


Decision = Run | Skip


def next_decisions(
    states: Mapping[str, StepState], config: RegistrationConfig, graph: StepGraph = BUILT_IN
) -> list[Decision]:
    """Decisions for every pending step whose prerequisites have all finished, in step order."""
    results = {k: s.result or {} for k, s in states.items() if s.status == StepStatus.COMPLETED}
    decisions: list[Decision] = []
    for spec in graph.steps:
        if states[spec.key].status != StepStatus.PENDING:
            continue
        prerequisites = [states[d] for d in spec.prerequisites]
        if any(p.status not in _SETTLED for p in prerequisites):
            continue
        decisions.append(_decide(spec.key, states, results, config, graph))
    return decisions


_SETTLED = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED})


def _decide(
    key: str,
    states: Mapping[str, StepState],
    results: Mapping[str, dict[str, Any]],
    config: RegistrationConfig,
    graph: StepGraph,
) -> Decision:
    spec = graph.spec(key)
    for dep in spec.depends_on:
        dep_state = states[dep]
        label = graph.spec(dep).label
        if dep_state.status == StepStatus.FAILED:
            return Skip(key, f"{label} failed", blocked_by=dep)
        if dep_state.status == StepStatus.SKIPPED and dep_state.blocked_by is not None:
            root = dep_state.blocked_by
            return Skip(key, f"{graph.spec(root).label} failed (via {label})", blocked_by=root)
    if isinstance(key, StepKey) and not config.step_enabled(key):
        return Skip(key, f"disabled by configuration (steps.{key} is false)")
    reason = spec.condition(config, results)
    if reason is not None:
        return Skip(key, reason)
    return Run(key)


def job_outcome(states: Mapping[str, StepState]) -> JobStatus | None:
    """The job's final status once no step is pending or running, else None."""
    statuses = [s.status for s in states.values()]
    if any(s == StepStatus.PENDING or s in STEP_ACTIVE for s in statuses):
        return None
    if StepStatus.CANCELLED in statuses:
        return JobStatus.CANCELLED
    if StepStatus.FAILED in statuses:
        return JobStatus.FAILED
    return JobStatus.COMPLETED


def steps_to_rerun(states: Mapping[str, StepState]) -> set[str]:
    """The failed steps, plus the steps skipped because of them; nothing that completed."""
    failed = {k for k, s in states.items() if s.status == StepStatus.FAILED}
    blocked = {
        k for k, s in states.items() if s.status == StepStatus.SKIPPED and s.blocked_by in failed
    }
    return failed | blocked


def first_failure(states: Mapping[str, StepState], graph: StepGraph = BUILT_IN) -> str | None:
    """The lowest-numbered failed step, the one a summary names."""
    for spec in graph.steps:
        if states[spec.key].status == StepStatus.FAILED:
            return spec.key
    return None
