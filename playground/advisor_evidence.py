"""What the advisor cites: the measurements stored under PLAYGROUND_HOME, with their figures and intervals, and
where they contradict the answers.

- an evaluation run (the latest, or one the user picks): per arm the Token F1 mean with its 95 % bootstrap interval,
  the paired difference between the two arms compared, and the mean time per answer;
- the latest freshness drill: how fast RAG learned a changed fact, which arms then gave it, what re-training took;
- the blind arena's leaderboard: Bradley–Terry ratings with their intervals and vote counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from playground import eval_history, freshness
from playground.advisor_rules import TRAINS, Answers, Approach, question
from playground.evaluate import METRIC_LABELS, MIN_QUESTIONS, is_lead

METRIC = "f1"  # the quality quoted: token F1 against the references (SQuAD's normalisation)
ARMS = {a.value for a in Approach}


@dataclass(frozen=True)
class Evidence:
    """The stored measurements as their records; None where nothing was measured yet."""

    run: dict[str, Any] | None = None  # an evaluation run's run.json
    drill: dict[str, Any] | None = None  # a freshness drill's report
    board: dict[str, Any] | None = None  # the arena leaderboard's JSON


@dataclass(frozen=True)
class Cited:
    kind: str  # evaluation | freshness | votes
    source: str  # which record: the run's id, the drill's file, the vote log
    sentence: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def gather(home: Path, run_id: str | None = None, visible: Callable[[str], bool] = lambda owner: True) -> Evidence:
    """The chosen evaluation run (default: the latest), the latest freshness drill and the arena's leaderboard; of
    the runs and drills, only those whose owner's tag is `visible` (see `Roles.may_see`)."""
    if run_id:
        run, _ = eval_history.load(home, run_id)
        if not visible(run.get("owner", "")):  # said as of a run that does not exist: its id tells nothing
            raise UserError(f"No stored evaluation run {run_id!r}.")
    else:
        stored = [found for found in eval_history.runs(home) if visible(found["owner"])]  # newest first
        run = eval_history.load(home, stored[0]["run_id"])[0] if stored else None
    return Evidence(run, freshness.latest(home, visible), arena_board(home))


def arena_board(home: Path) -> dict[str, Any] | None:
    """The arena's leaderboard as JSON; None without votes."""
    try:
        from playground.leaderboard import leaderboard
        from playground.votes import VoteLog
    except ImportError:  # the arena is optional: without it the advice does without votes
        return None
    stored = VoteLog(home).read()
    return leaderboard(stored.votes, stored.problems).to_json() if stored.votes else None


def cite(evidence: Evidence, answers: Answers, chosen: Approach) -> tuple[list[Cited], list[str]]:
    """The sentences citing each measurement, and those saying where a measurement contradicts the answers."""
    cited: list[Cited] = []
    contradictions: list[str] = []
    for record, citer in ((evidence.run, cite_run), (evidence.drill, cite_drill), (evidence.board, cite_board)):
        if record:
            found, notes = citer(record, answers, chosen)
            cited += [found] if found else []
            contradictions += notes
    return cited, contradictions


def _number(value: float, spec: str = ".2f") -> str:
    return f"{round(value, 2) + 0.0:{spec}}"  # + 0.0: a rounded -0.0 would read "-0.00"


def _interval(found: dict[str, Any], spec: str = ".2f", unit: str = "") -> str:
    """'0.71 Token F1 [0.64, 0.78]': the mean, what it measures, its 95 % interval."""
    mean = _number(found["mean"], spec) + (f" {unit}" if unit else "")
    return f"{mean} [{_number(found['low'], spec)}, {_number(found['high'], spec)}]"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _stat(run: dict[str, Any], arm: Approach, metric: str) -> dict[str, Any] | None:
    return ((run.get("metrics") or {}).get(arm.value) or {}).get(metric)


def _difference(run: dict[str, Any], first: Approach, second: Approach) -> dict[str, Any] | None:
    """first − second's paired difference in `METRIC`; the run stores each pair once, in pane order."""
    for d in run.get("differences", []):
        if d.get("metric") != METRIC:
            continue
        if (d["arm"], d["minus"]) == (first.value, second.value):
            return {"mean": d["mean"], "low": d["low"], "high": d["high"]}
        if (d["arm"], d["minus"]) == (second.value, first.value):
            return {"mean": -d["mean"], "low": -d["high"], "high": -d["low"]}
    return None


def cite_run(run: dict[str, Any], answers: Answers, chosen: Approach) -> tuple[Cited | None, list[str]]:
    scores = {a: found for a in Approach if (found := _stat(run, a, METRIC))}
    times = {a: found for a in Approach if (found := _stat(run, a, "latency_s"))}
    if not scores:
        return None, []
    ranked = sorted(scores, key=lambda a: -scores[a]["mean"])
    best = ranked[0]
    other = chosen if chosen in scores and chosen is not best else next(iter(ranked[1:]), None)
    name = ((run.get("settings") or {}).get("questions") or {}).get("name") or "the question set"
    run_id = run.get("run_id") or "?"
    count = run.get("questions", 0)
    where = f"on your {count} question{'' if count == 1 else 's'} ({name}, run {run_id})"
    sentence = (
        f"{where[0].upper()}{where[1:]}, {best.label} scored {_interval(scores[best], unit=METRIC_LABELS[METRIC])}"
    )
    figures: dict[str, Any] = {
        "run_id": run_id,
        "questions": run.get("questions", 0),
        "metric": METRIC,
        "scores": {a.value: found for a, found in scores.items()},
        "latency_s": {a.value: found for a, found in times.items()},
    }
    notes = []
    if other is not None:
        sentence += f" vs {_interval(scores[other])} for {other.label}"
        ahead = _difference(run, best, other)
        if ahead is not None:
            clear = is_lead(ahead["low"], run.get("questions", 0))  # as the evaluation's findings judge it
            reading = "more than noise" if clear else "within noise"
            if round(ahead["low"], 2) > 0 and not clear:
                reading = f"too few questions to tell, under {MIN_QUESTIONS}"
            sentence += f" (difference {_interval(ahead, '+.2f')}: {reading})"
            figures["difference"] = {"arm": best.value, "minus": other.value, **ahead}
            if clear and other is chosen:
                notes.append(_quality_contradiction(answers, chosen, best, where, ahead))
        if best in times and other in times and times[other]["mean"] > 0:
            sentence += (
                f", at {times[best]['mean'] / times[other]['mean']:.1f}× the time per answer of {other.label} "
                f"({_duration(times[best]['mean'])} vs {_duration(times[other]['mean'])})"
            )
    if chosen not in scores:
        sentence += f". The run did not include {chosen.label}: add it to the arms to measure it"
    slowest = max(times, key=lambda a: times[a]["mean"], default=None)
    if answers.latency == "strict" and len(times) > 1 and slowest is chosen:
        fastest = min(times, key=lambda a: times[a]["mean"])
        notes.append(
            f"The measurements contradict your answers: you need answers as fast as possible, but {chosen.label} was "
            f"the slowest arm measured ({_interval(times[chosen], unit='s')} per answer, against "
            f"{_duration(times[fastest]['mean'])} for {fastest.label}; run {run_id})."
        )
    return Cited("evaluation", run_id, sentence + ".", figures), notes


def _quality_contradiction(
    answers: Answers, chosen: Approach, best: Approach, where: str, ahead: dict[str, Any]
) -> str:
    figures = f"{METRIC_LABELS[METRIC]} difference {_interval(ahead, '+.2f')}, more than noise"
    if answers.style == "little" and best in TRAINS and chosen not in TRAINS:
        return (
            f"The measurements contradict your answers: you said style matters little, yet {where} {best.label} — "
            f"which has the adapter — beat {chosen.label} ({figures}): the adapter taught more than style here."
        )
    return (
        f"The measurements contradict your answers: they point to {chosen.label}, but {where} {best.label} beat "
        f"it ({figures})."
    )


def cite_drill(drill: dict[str, Any], answers: Answers, chosen: Approach) -> tuple[Cited | None, list[str]]:
    change = drill.get("change") or {}
    retrieved = drill.get("retrieved") or []
    read = sum(bool(r.get("new_fact_read")) for r in retrieved)
    gave: dict[Approach, tuple[int, int]] = {}
    for arm in Approach:
        mine = [a for a in drill.get("answers") or [] if a.get("arm") == arm.value]
        if mine:
            gave[arm] = (sum(bool(a.get("new")) for a in mine), len(mine))
    when = str(drill.get("finished_at", ""))[:10] or "date unknown"
    parts = [
        f"In your latest freshness drill ({change.get('source')}: {change.get('old')} → {change.get('new')}, {when}), "
        f"re-indexing the changed file took {_duration(float(drill.get('reindex_s', 0.0)))} (all RAG needs to learn "
        f"the change) and retrieval read the new fact for {read} of {len(retrieved)} questions"
    ]
    parts += [f"{arm.label} gave the new fact in {new} of {total} answers" for arm, (new, total) in gave.items()]
    tuned = drill.get("refinetune") or {}
    if tuned.get("adapter"):
        asked = tuned.get("answers") or []
        parts.append(f"re-training took {_duration(tuned['job_s'])} ({_duration(tuned['training_s'])} of training)")
        if asked:
            right = sum(bool(a.get("new")) for a in asked)
            parts[-1] += f", and the re-trained adapter gave the new fact in {right} of {len(asked)} answers"
    elif tuned.get("error"):
        parts.append(f"re-training failed: {tuned['error']}")
    else:
        parts.append("re-training was not timed in this drill")
    figures = {
        "reindex_s": drill.get("reindex_s"),
        "new_fact_read": [read, len(retrieved)],
        "new_fact_given": {arm.value: list(count) for arm, count in gave.items()},
        "retrain_job_s": tuned.get("job_s"),
        "retrain_training_s": tuned.get("training_s"),
    }
    notes = []
    if chosen is not Approach.FINETUNED and answers.changes != "rarely" and chosen in gave and not gave[chosen][0]:
        new, total = gave[chosen]
        found = (
            f"although retrieval read it for {read} of {len(retrieved)} questions: the model does not use what it "
            "retrieves yet"
            if read
            else "and retrieval did not find it: check the retrieval settings"
        )
        notes.append(
            f"The measurements contradict your answers: the knowledge changes "
            f"{question('changes').label(answers.changes)} and {chosen.label} is meant to keep up, but in the drill "
            f"it gave the new fact in {new} of {total} answers, {found}."
        )
    return Cited("freshness", str(drill.get("file", "")), "; ".join(parts) + ".", figures), notes


def _standing(found: dict[str, Any]) -> str:
    text = f"{Approach(found['arm']).label} {found['rating']:.0f}"
    if found.get("low") is not None and found.get("high") is not None:
        text += f" [{found['low']:.0f}, {found['high']:.0f}]"
    rate = found.get("win_rate")
    return text + f" ({'' if rate is None else f'won {rate:.0%}, '}{found.get('votes', 0)} votes)"


def cite_board(board: dict[str, Any], answers: Answers, chosen: Approach) -> tuple[Cited | None, list[str]]:
    rated = sorted(
        (s for s in board.get("by_arm") or [] if s.get("arm") in ARMS and s.get("rating") is not None),
        key=lambda s: -s["rating"],
    )
    if not rated:
        return None, []
    sentence = (
        f"In {board.get('votes', 0)} blind-arena votes (Bradley–Terry ratings on the Elo scale, 95 % intervals): "
        + "; ".join(_standing(s) for s in rated)
    )
    figures = {"votes": board.get("votes", 0), "by_arm": rated}
    top, mine = rated[0], next((s for s in rated if s["arm"] == chosen.value), None)
    notes = []
    apart = mine is not None and (top.get("low") or 0.0) > (mine.get("high") or float("inf"))  # no overlap
    if mine is not None and mine is not top and apart:
        notes.append(
            f"The votes contradict your answers: they point to {chosen.label}, but voters preferred "
            f"{_standing(top)} to {_standing(mine)}, the intervals apart."
        )
    return Cited("votes", "votes/votes.jsonl", sentence + ".", figures), notes
