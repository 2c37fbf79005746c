"""Which approach? RAG, fine-tuning or the hybrid, from a few answers about the use case and from what was measured.

The answers go through the decision framework (`playground.advisor_rules`: a table of rules, each with its reason);
the measurements stored under PLAYGROUND_HOME are cited with their figures and intervals, and where they contradict
the answers the advice says so (`playground.advisor_evidence`). The "Which approach?" tab and
`python -m playground advise` both call `AdvisorService`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from playground import eval_history
from playground.advisor_evidence import Cited, Evidence, cite, gather
from playground.advisor_rules import Answers, Approach, Decision, Rule, decide, question
from playground.roles import Roles

NOTHING_MEASURED = (
    "Nothing measured yet: run an evaluation or a freshness drill (Evaluate tab), or vote in the blind arena, and the "
    "advice will cite the figures."
)


@dataclass(frozen=True)
class Advice:
    answers: Answers
    decision: Decision
    evidence: tuple[Cited, ...]
    contradictions: tuple[str, ...]

    @property
    def approach(self) -> Approach:
        return self.decision.approach

    @property
    def headline(self) -> str:
        d = self.decision
        text = f"Recommended: {d.approach.title}."
        if d.approach is Approach.HYBRID:
            text += " Both kinds of reasons apply: the adapter brings the style, retrieval the facts."
        weights = ", ".join(f"{a.label} {score}" for a, score in d.scores.items())
        ruled_out = f" ({' and '.join(a.label for a in d.ruled_out)} ruled out)" if d.ruled_out else ""
        return f"{text} Weight of your answers: {weights}{ruled_out}."

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        return {
            "approach": d.approach.value,
            "title": d.approach.title,
            "headline": self.headline,
            "answers": asdict(self.answers),
            "scores": {a.value: score for a, score in d.scores.items()},
            "ruled_out": [a.value for a in d.ruled_out],
            "reasons": [rule.to_json() for rule in d.reasons],
            "against": [rule.to_json() for rule in d.against],
            "evidence": [c.to_json() for c in self.evidence],
            "contradictions": list(self.contradictions),
        }


def reason_line(rule: Rule) -> str:
    """'How often does the knowledge change? weekly or more often. The knowledge changes …'."""
    asked = question(rule.question)
    return f"{asked.text} {asked.label(rule.answer)}. {rule.reason}"


def advise(answers: Answers, evidence: Evidence | None = None) -> Advice:
    decision = decide(answers)
    cited, contradictions = cite(evidence or Evidence(), answers, decision.approach)
    return Advice(answers, decision, tuple(cited), tuple(contradictions))


class AdvisorService:
    """Reads only what is stored under `home`: no model loads. `roles`: who sees which stored runs and drills (None:
    one user, who sees them all)."""

    def __init__(self, home: Path, roles: Roles | None = None) -> None:
        self.home = home
        self.roles = roles

    def _visible(self, workspace: str | None) -> Callable[[str], bool]:
        roles = self.roles
        if roles is None:
            return lambda owner: True
        caller = roles.caller(workspace)
        return lambda owner: roles.may_see(owner, caller)

    def runs(self, workspace: str | None = None) -> list[tuple[str, str]]:
        """(label, run id) of each stored evaluation run this browser may cite, newest first."""
        visible = self._visible(workspace)
        return [
            (f"{run['started_at'][:16]} · {run['questions']} · {run['count']} questions · {run['arms']}", run["run_id"])
            for run in eval_history.runs(self.home)
            if visible(run["owner"])
        ]

    def advise(self, answers: Answers, run_id: str | None = None, workspace: str | None = None) -> Advice:
        """The advice for `answers`, citing the run `run_id` (default: the latest), the latest freshness drill (of
        those this browser may see) and the arena's votes (everyone's)."""
        return advise(answers, gather(self.home, run_id, self._visible(workspace)))
