"""The Compare tab's blind arena: two arms answer as A and B with their names hidden; a vote reveals them and updates
the leaderboard (ratings with 95 % intervals, per arm and per adapter, and the position-bias check)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import gradio as gr

from playground import export
from playground.arena import ArenaService, Match
from playground.compare import ROW_NAMES
from playground.leaderboard import Leaderboard, Standing
from playground.load import COMPARE_GROUP
from playground.metrics import NAMES, arm_label
from playground.ui.compare import CompareControls, compare_options
from playground.ui.errors import shows_errors
from playground.votes import Outcome, Vote

INTRO = (
    "Two of the chosen arms, drawn at random, answer your question as **A** and **B** in random order, their names "
    "hidden. Vote for the better answer (or a tie, or both bad); the names are shown after the vote. They answer with "
    "the **Side by side** tab's adapter, decoding and retrieval settings. The leaderboard fits Bradley–Terry ratings "
    "on the votes (Elo scale, 95 % bootstrap intervals): a tie counts as half a win for each, *both bad* is counted "
    "but left out of the ratings. Only pairs are rated, never single answers."
)
BOARD_HEADERS = ["#", "arm", "rating [95 % interval]", "win rate", "won", "lost", "tied", "both bad", "votes"]


def _rating(standing: Standing) -> str:
    if standing.rating is None:
        return "–"
    if standing.low is None or standing.high is None:
        return f"{standing.rating:.0f}"
    return f"{standing.rating:.0f} [{standing.low:.0f}, {standing.high:.0f}]"


def board_rows(standings: Sequence[Standing]) -> list[list[Any]]:
    """One row per arm, best first; unrated arms (only "both bad" votes) have no rank."""
    return [
        [
            index if s.rating is not None else "",
            s.player,
            _rating(s),
            "–" if s.win_rate is None else f"{s.win_rate:.0%}",
            s.wins,
            s.losses,
            s.ties,
            s.both_bad,
            s.votes,
        ]
        for index, s in enumerate(standings, start=1)
    ]


def board_note(board: Leaderboard) -> str:
    """The vote count, the position-bias sentence and any damaged lines of the log (Markdown)."""
    if not board.votes and not board.problems:
        return "No votes yet."
    counted = f"{board.votes} vote{'' if board.votes == 1 else 's'} ({board.position.both_bad} both bad)"
    text = f"{counted}. {board.position.sentence}" + (f" {board.caution}" if board.caution else "")
    if board.problems:
        shown = "; ".join(board.problems[:3]) + ("; …" if len(board.problems) > 3 else "")
        text += f"\n\n{len(board.problems)} damaged lines of the vote log were skipped: {shown}"
    return text


def reveal(vote: Vote) -> str:
    """Who was who, once the vote is stored (Markdown)."""
    return (
        f"**A** was **{arm_label(vote.arm_a, vote.adapter_a)}**; **B** was **{arm_label(vote.arm_b, vote.adapter_b)}**."
        f" Your vote: {vote.vote.label}. Stored."
    )


def build(
    service: ArenaService, workspace: gr.BrowserState, controls: CompareControls, downloads_root: Path | None = None
) -> None:
    """Lays out the arena as a sub-tab of the Compare tab; its leaderboard (and the vote log's downloads, written
    under `downloads_root`, a temp folder by default) refresh whenever the tab is opened."""
    root = downloads_root or export.default_root()
    with gr.Tab("Blind arena", elem_id="arena-tab") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            prompt = gr.Textbox(
                label="Question",
                placeholder="e.g. How many days do I have to return an item?",
                elem_id="arena-prompt",
                lines=2,
                scale=5,
            )
            ask = gr.Button("Ask two hidden arms", variant="primary", elem_id="arena-ask", scale=1)
        arms = gr.CheckboxGroup(
            [(NAMES[arm], arm) for arm in ROW_NAMES],
            value=list(ROW_NAMES),
            label="Arms in the draw (two are picked at random for each question)",
            elem_id="arena-arms",
        )
        with gr.Row(equal_height=True):
            pane_a = gr.Textbox(label="Answer A", elem_id="arena-a", lines=8, max_lines=20, interactive=False)
            pane_b = gr.Textbox(label="Answer B", elem_id="arena-b", lines=8, max_lines=20, interactive=False)
        with gr.Row():
            buttons = {
                outcome: gr.Button(outcome.label, elem_id=f"arena-vote-{outcome.value}", interactive=False)
                for outcome in Outcome
            }
        revealed = gr.Markdown(elem_id="arena-reveal")
        gr.Markdown("### Leaderboard")
        note = gr.Markdown(elem_id="arena-note")
        by_arm = gr.Dataframe(
            headers=BOARD_HEADERS,
            label="Per arm (adapters pooled)",
            interactive=False,
            wrap=True,
            elem_id="arena-board",
        )
        by_adapter = gr.Dataframe(
            headers=BOARD_HEADERS,
            label="Per arm and adapter",
            interactive=False,
            wrap=True,
            elem_id="arena-board-adapters",
        )
        with gr.Row(visible=service.log_downloadable):  # enabled once there is a vote
            log_jsonl = gr.DownloadButton(
                "Vote log (JSONL, as stored)", interactive=False, size="sm", elem_id="arena-download-jsonl"
            )
            log_csv = gr.DownloadButton("Vote log (CSV)", interactive=False, size="sm", elem_id="arena-download-csv")
        match = gr.State(None)

    def board() -> dict[Any, Any]:
        found = service.leaderboard()
        files = service.downloads(root)
        shown = {
            button: gr.update(value=str(files[kind]) if kind in files else None, interactive=kind in files)
            for kind, button in (("jsonl", log_jsonl), ("csv", log_csv))
        }
        return {
            note: board_note(found),
            by_arm: board_rows(found.by_arm),
            by_adapter: board_rows(found.by_adapter),
        } | shown

    def voting(allowed: bool) -> dict[Any, Any]:
        return {button: gr.update(interactive=allowed) for button in buttons.values()}

    @shows_errors
    def play(question: str, chosen: list[str] | None, workspace_id: str | None, *settings: Any) -> Iterator[dict]:
        options = compare_options(ROW_NAMES, workspace_id, *settings)  # the arena picks the two arms itself
        # Closed explicitly, as in the side-by-side view: a browser that leaves stops the generation at once.
        with closing(service.play(question, options, tuple(chosen or ()))) as matches:
            for found in matches:
                shown = f"One of the arms could not answer: {found.error}" if found.error else ""
                yield {pane_a: found.answer_a, pane_b: found.answer_b, match: found, revealed: shown} | voting(
                    found.votable
                )

    def cast(outcome: Outcome) -> Callable[[Match | None], dict]:
        @shows_errors
        def cast_vote(found: Match | None) -> dict:  # not `vote`: that API name is the endpoint's (ui/api.py)
            stored = service.vote(found, outcome)
            return {match: None, revealed: reveal(stored)} | voting(False) | board()

        return cast_vote

    private: dict[str, Any] = {"api_visibility": "private"}
    # The arena's answers come from the same engine as the side-by-side view: they share its slots and queue.
    slots: dict[str, Any] = {"concurrency_limit": service.compare.setup().concurrency, "concurrency_id": COMPARE_GROUP}
    outputs = [pane_a, pane_b, match, revealed, *buttons.values()]
    inputs = [prompt, arms, workspace, *controls.inputs()]
    ask.click(play, inputs, outputs, **private, **slots)
    prompt.submit(play, inputs, outputs, **private, **slots)
    for outcome, button in buttons.items():
        button.click(
            cast(outcome),
            match,
            [match, revealed, *buttons.values(), note, by_arm, by_adapter, log_jsonl, log_csv],
            **private,
        )
    tab.select(shows_errors(board), None, [note, by_arm, by_adapter, log_jsonl, log_csv], **private)
