"""The workflow state machine: transitions, callbacks, history, persistence, dicts, diagrams."""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import datetime

import pytest

import ims_kit
from ims_kit import workflow as wfmod
from ims_kit.errors import (
    InvalidInputError,
    InvalidTransition,
    UnknownWorkflowError,
    WorkflowError,
)
from ims_kit.workflow import (
    EVENTS,
    STATES,
    TRANSITIONS,
    Transition,
    TransitionEvent,
    Workflow,
    WorkflowState,
)

# The machine's table as the issue states it, pinned here so a change to it is deliberate.
EXPECTED = {
    ("IDLE", "START"): "ANALYZING",
    ("ANALYZING", "ANALYZED"): "SELECTING_MODEL",
    ("ANALYZING", "ABORT"): "ROLLBACK",
    ("SELECTING_MODEL", "MODEL_SELECTED"): "EXECUTING",
    ("SELECTING_MODEL", "ABORT"): "ROLLBACK",
    ("EXECUTING", "EXECUTION_COMPLETED"): "VALIDATING",
    ("EXECUTING", "EXECUTION_FAILED"): "ROLLBACK",
    ("EXECUTING", "ABORT"): "ROLLBACK",
    ("VALIDATING", "VALIDATION_PASSED"): "COMPLETED",
    ("VALIDATING", "VALIDATION_FAILED"): "ROLLBACK",
    ("VALIDATING", "RETRY"): "SELECTING_MODEL",
    ("VALIDATING", "ABORT"): "ROLLBACK",
    ("ROLLBACK", "ROLLBACK_COMPLETED"): "FAILED",
}
_TO_VALIDATING = ["START", "ANALYZED", "MODEL_SELECTED", "EXECUTION_COMPLETED"]
REACH = {
    "IDLE": [],
    "ANALYZING": ["START"],
    "SELECTING_MODEL": ["START", "ANALYZED"],
    "EXECUTING": ["START", "ANALYZED", "MODEL_SELECTED"],
    "VALIDATING": _TO_VALIDATING,
    "COMPLETED": [*_TO_VALIDATING, "VALIDATION_PASSED"],
    "ROLLBACK": ["START", "ABORT"],
    "FAILED": ["START", "ABORT", "ROLLBACK_COMPLETED"],
}
VALID = sorted(EXPECTED)
INVALID = [(s, e) for s in STATES for e in EVENTS if (s, e) not in EXPECTED]
PATHS = {
    "happy": ([*_TO_VALIDATING, "VALIDATION_PASSED"], "COMPLETED"),
    "execution failed": (
        ["START", "ANALYZED", "MODEL_SELECTED", "EXECUTION_FAILED", "ROLLBACK_COMPLETED"],
        "FAILED",
    ),
    "validation failed": ([*_TO_VALIDATING, "VALIDATION_FAILED", "ROLLBACK_COMPLETED"], "FAILED"),
    "retry then pass": (
        [*_TO_VALIDATING, "RETRY", "MODEL_SELECTED", "EXECUTION_COMPLETED", "VALIDATION_PASSED"],
        "COMPLETED",
    ),
    "two retries then fail": (
        _TO_VALIDATING
        + ["RETRY", "MODEL_SELECTED", "EXECUTION_COMPLETED"] * 2
        + ["VALIDATION_FAILED", "ROLLBACK_COMPLETED"],
        "FAILED",
    ),
    "abort while selecting": (["START", "ANALYZED", "ABORT", "ROLLBACK_COMPLETED"], "FAILED"),
}


def _walk(wf: Workflow, events: list[str]) -> Workflow:
    for event in events:
        wf.transition(event, {"step": event.lower()})
    return wf


def _db_snapshot(kit, workflow_id):
    rows = kit.db.execute(
        "SELECT event, source, target, context FROM workflow_transitions WHERE workflow_id = ?",
        [workflow_id],
    ).fetchall()
    return (
        kit.db.execute(
            "SELECT state, context, updated FROM workflows WHERE workflow_id = ?", [workflow_id]
        ).fetchone(),
        rows,
        kit.events.count("workflow.state_changed"),
    )


def test_the_machine_has_exactly_the_pinned_transitions():
    """The (state, event) -> target table read from the machine is the one the issue names."""
    assert TRANSITIONS == EXPECTED
    assert set(STATES) == {s.value for s in WorkflowState}
    assert set(EVENTS) == {e.value for e in TransitionEvent}
    assert {"COMPLETED", "FAILED"} == wfmod.FINAL_STATES


def test_a_new_workflow_is_idle_with_a_generated_id():
    """Workflow() starts in IDLE with an empty history and a 12-character id."""
    wf = Workflow()
    assert (wf.state, wf.get_history(), wf.context) == ("IDLE", [], {})
    assert len(wf.id) == 12 and wf.workflow_id == wf.id
    assert wf.allowed_events == ["START"] and not wf.is_final


@pytest.mark.parametrize(("source", "event"), VALID, ids=[f"{s}-{e}" for s, e in VALID])
def test_every_valid_transition_moves_and_is_saved(kit, source, event):
    """Each allowed (state, event) pair reaches its target, in memory and in the database."""
    wf = _walk(kit.workflow("wf"), REACH[source])
    step = wf.transition(event, {"n": 1})
    assert (step.source, step.event, step.target) == (source, event, EXPECTED[(source, event)])
    assert wf.state == EXPECTED[(source, event)]
    assert kit.workflow("wf").to_dict() == wf.to_dict()


@pytest.mark.parametrize(("state", "event"), INVALID, ids=[f"{s}-{e}" for s, e in INVALID])
def test_every_invalid_transition_raises_and_changes_nothing(kit, state, event):
    """A (state, event) pair the machine does not allow raises and leaves memory and DB as is."""
    wf = _walk(kit.workflow("wf"), REACH[state])
    before, stored = wf.to_dict(), _db_snapshot(kit, "wf")
    with pytest.raises(InvalidTransition) as info:
        wf.transition(event, {"should": "not stick"})
    err = info.value
    assert (err.workflow_id, err.state, err.event) == ("wf", state, event)
    assert err.allowed == wf.allowed_events
    assert state in str(err) and event in str(err)
    assert all(allowed in str(err) for allowed in err.allowed)
    assert wf.to_dict() == before and wf.state == state
    assert _db_snapshot(kit, "wf") == stored


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_path_ends_where_expected(name):
    """The happy path, both failure paths, the retry paths and an abort reach their end state."""
    events, end = PATHS[name]
    wf = _walk(Workflow(), events)
    assert wf.state == end and wf.is_final and wf.allowed_events == []
    assert [t.event for t in wf.get_history()] == events


@pytest.mark.parametrize("event", ["START", "start", "Start", TransitionEvent.START])
def test_events_are_accepted_by_seed_name_lower_case_or_enum(event):
    """The seed's upper-case names, lower-case method names and the enum all work."""
    assert Workflow().transition(event).event == "START"


def test_an_unknown_event_name_lists_the_known_ones():
    """A misspelt event is refused with the list of real events."""
    with pytest.raises(InvalidInputError, match="known: START, ANALYZED"):
        Workflow().transition("LAUNCH")


def test_retries_are_bounded_by_max_retries():
    """RETRY works max_retries times, then is refused with the reason and left out of allowed."""
    wf = _walk(Workflow(max_retries=1), _TO_VALIDATING)
    assert "RETRY" in wf.allowed_events
    _walk(wf, ["RETRY", "MODEL_SELECTED", "EXECUTION_COMPLETED"])
    assert wf.retries_used == 1 and "RETRY" not in wf.allowed_events
    with pytest.raises(InvalidTransition, match="all 1 retries are used"):
        wf.transition("RETRY")
    assert wf.state == "VALIDATING" and wf.retries_used == 1


def test_history_records_time_event_source_target_and_context():
    """Each step is a Transition with its own context and a UTC ISO timestamp, oldest first."""
    wf = Workflow()
    wf.transition("START", {"task": "summarize doc"})
    wf.transition("ANALYZED", {"complexity": "easy", "tokens": 12})
    first, second = wf.get_history()
    assert first == Transition("START", "IDLE", "ANALYZING", {"task": "summarize doc"}, first.ts)
    assert second.context == {"complexity": "easy", "tokens": 12}
    assert datetime.fromisoformat(first.ts).utcoffset().total_seconds() == 0
    assert first.ts <= second.ts == wf.updated


def test_context_accumulates_later_values_winning_and_is_a_copy():
    """The workflow's context merges each transition's context; callers get a copy."""
    wf = _walk(Workflow(), ["START"])
    wf.transition("ANALYZED", {"model": "a", "tokens": 5})
    wf.transition("MODEL_SELECTED", {"model": "b"})
    assert wf.context == {"step": "start", "model": "b", "tokens": 5}
    wf.context["model"] = "changed"
    assert wf.context["model"] == "b"


def test_context_must_be_a_mapping_and_is_stored_as_json():
    """A non-mapping context is refused; values are kept as they read back from JSON."""
    wf = Workflow()
    with pytest.raises(WorkflowError, match="mapping"):
        wf.transition("START", ["not", "a", "dict"])
    assert wf.state == "IDLE"
    step = wf.transition("START", {"pair": (1, 2), 3: "three"})
    assert step.context == {"pair": [1, 2], "3": "three"}


def test_callbacks_run_exit_of_source_before_entry_of_target_in_registration_order():
    """For one transition: every exit callback of the source, then every entry one of the target."""
    wf = Workflow()
    calls = []
    wf.register_entry_callback("ANALYZING", lambda t: calls.append(("enter-1", t.target)))
    wf.register_exit_callback(WorkflowState.IDLE, lambda t: calls.append(("exit", t.source)))
    wf.register_entry_callback("analyzing", lambda t: calls.append(("enter-2", t.event)))
    wf.transition("START")
    assert calls == [("exit", "IDLE"), ("enter-1", "ANALYZING"), ("enter-2", "START")]


def test_callbacks_receive_the_transition_and_see_the_workflow_move():
    """An exit callback sees the source state, an entry one the target and the merged context."""
    wf = _walk(Workflow(), ["START", "ANALYZED"])
    seen = {}

    def on_exit(t):
        seen["exit"] = (wf.state, t)

    def on_entry(t):
        seen["entry"] = (wf.state, wf.context["model"], t.context)

    wf.register_exit_callback("SELECTING_MODEL", on_exit)
    wf.register_entry_callback("EXECUTING", on_entry)
    step = wf.transition("MODEL_SELECTED", {"model": "gpt-x"})
    assert seen["exit"] == ("SELECTING_MODEL", step)
    assert seen["entry"] == ("EXECUTING", "gpt-x", {"model": "gpt-x"})


def test_callbacks_are_not_called_for_other_states_or_on_restore():
    """Callbacks fire only for their state, and loading a workflow enters no state."""
    wf = Workflow()
    calls = []
    wf.register_entry_callback("COMPLETED", calls.append)
    _walk(wf, ["START", "ANALYZED"])
    Workflow.from_dict(wf.to_dict())
    assert calls == []


@pytest.mark.parametrize("kind", ["entry", "exit"])
def test_a_failing_callback_raises_and_rolls_the_transition_back(kit, kind):
    """The callback's own exception propagates; state, context, history, rows and events stay."""
    wf = _walk(kit.workflow("wf"), ["START"])
    failures = iter([RuntimeError("callback broke")])

    def flaky(t):
        failure = next(failures, None)
        if failure is not None:
            raise failure

    if kind == "entry":
        wf.register_entry_callback("SELECTING_MODEL", flaky)
    else:
        wf.register_exit_callback("ANALYZING", flaky)
    before, stored = wf.to_dict(), _db_snapshot(kit, "wf")
    with pytest.raises(RuntimeError, match="callback broke"):
        wf.transition("ANALYZED", {"tokens": 3})
    assert wf.to_dict() == before and _db_snapshot(kit, "wf") == stored
    assert wf.transition("ANALYZED", {"tokens": 3}).target == "SELECTING_MODEL"
    assert kit.workflow("wf").state == "SELECTING_MODEL"


def test_a_callback_cannot_send_another_transition():
    """Transitions do not nest: a callback that sends one gets a WorkflowError, nothing moves."""
    wf = Workflow()
    wf.register_entry_callback("ANALYZING", lambda t: wf.transition("ANALYZED"))
    with pytest.raises(WorkflowError, match="cannot nest"):
        wf.transition("START")
    assert wf.state == "IDLE" and wf.get_history() == []


def test_registering_for_an_unknown_state_or_a_non_callable_is_refused():
    """Callback registration checks the state name and that the callback is callable."""
    wf = Workflow()
    with pytest.raises(InvalidInputError, match="unknown workflow state 'RUNNING'"):
        wf.register_entry_callback("RUNNING", print)
    with pytest.raises(InvalidInputError, match="callable"):
        wf.register_exit_callback("IDLE", "print")


# -- persistence ----------------------------------------------------------------------------
def test_each_transition_is_a_row_and_a_state_changed_event(kit):
    """The workflows row holds state and context; each step a row and a workflow.state_changed."""
    wf = _walk(kit.workflow("abc123"), ["START", "ANALYZED"])
    state, context, _ = kit.db.execute(
        "SELECT state, context, updated FROM workflows WHERE workflow_id = 'abc123'"
    ).fetchone()
    assert (state, json.loads(context)) == ("SELECTING_MODEL", wf.context)
    rows = kit.db.execute(
        "SELECT event, source, target, context FROM workflow_transitions"
        " WHERE workflow_id = 'abc123' ORDER BY id"
    ).fetchall()
    assert rows == [
        ("START", "IDLE", "ANALYZING", '{"step": "start"}'),
        ("ANALYZED", "ANALYZING", "SELECTING_MODEL", '{"step": "analyzed"}'),
    ]
    events = kit.events.recent(kind="workflow.state_changed")[::-1]
    assert [e.subject for e in events] == ["abc123", "abc123"]
    assert [e.payload for e in events] == [
        {"source": "IDLE", "target": "ANALYZING", "event": "START", "context": {"step": "start"}},
        {
            "source": "ANALYZING",
            "target": "SELECTING_MODEL",
            "event": "ANALYZED",
            "context": {"step": "analyzed"},
        },
    ]


def test_a_workflow_survives_the_process_and_goes_on(kit, db_path):
    """A fresh Kit on the same file restores state, context, history and bound, and continues."""
    wf = kit.workflow("abc123")
    wf.transition("START", {"task": "summarize doc"})
    wf.transition("ANALYZED", {"complexity": "hard"})
    kit.close()
    with ims_kit.open(db_path) as fresh:
        again = fresh.workflow("abc123")
        assert again.to_dict() == wf.to_dict()
        again.transition("MODEL_SELECTED", {"model": "gpt-x"})
    with ims_kit.open(db_path) as third:
        restored = third.workflow("abc123")
        assert restored.state == "EXECUTING" and len(restored.get_history()) == 3
        assert restored.context == {"task": "summarize doc", "complexity": "hard", "model": "gpt-x"}


def test_kit_workflow_saves_a_new_workflow_at_once(kit):
    """kit.workflow() creates an IDLE row immediately, so it is listed before any transition."""
    wf = kit.workflow()
    assert [(w.workflow_id, w.state, w.transitions) for w in kit.workflows()] == [
        (wf.id, "IDLE", 0)
    ]


def test_an_unknown_id_is_an_error_when_creation_is_off(kit):
    """kit.workflow(id, create=False) raises UnknownWorkflowError, also a KeyError."""
    with pytest.raises(UnknownWorkflowError, match="unknown workflow id 'nope'") as info:
        kit.workflow("nope", create=False)
    assert isinstance(info.value, KeyError)


def test_a_copy_moved_on_elsewhere_is_refused_and_left_as_is(kit, db_path):
    """Two copies of one workflow: when one moves, the stale one cannot write over it."""
    mine = kit.workflow("shared")
    with ims_kit.open(db_path) as other:
        other.workflow("shared").transition("START")
    with pytest.raises(WorkflowError, match="another process moved it on"):
        mine.transition("START")
    assert mine.state == "IDLE" and kit.workflow("shared").state == "ANALYZING"


def test_a_tampered_stored_state_is_a_clear_error(kit, db_path):
    """A state value that is not one of the machine's is refused by name, not a bare KeyError."""
    kit.workflow("bad")
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE workflows SET state = 'RUNNING' WHERE workflow_id = 'bad'")
    with pytest.raises(WorkflowError, match="unknown state 'RUNNING'"):
        kit.workflow("bad")


def test_workflows_lists_newest_first_with_state_filter_and_limit(kit):
    """kit.workflows() orders by last update, filters by state (any case) and honours limit."""
    first = _walk(kit.workflow("one"), ["START"])
    kit.workflow("two")
    first.transition("ANALYZED")
    assert [w.workflow_id for w in kit.workflows()] == ["one", "two"]
    assert [w.workflow_id for w in kit.workflows(state="idle")] == ["two"]
    assert [w.workflow_id for w in kit.workflows(limit=1)] == ["one"]
    assert kit.workflows()[0].to_dict()["context"] == {"step": "start"}
    with pytest.raises(InvalidInputError, match="unknown workflow state"):
        kit.workflows(state="DONE")


# -- dicts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", STATES)
def test_to_dict_from_dict_round_trips_exactly(state):
    """from_dict(to_dict()) gives back an equal dict in every state, also through JSON."""
    wf = _walk(Workflow("rt", max_retries=3), REACH[state])
    data = wf.to_dict()
    assert Workflow.from_dict(data).to_dict() == data
    assert Workflow.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_a_restored_workflow_can_go_on():
    """A workflow restored from a dict accepts the next events of its state."""
    wf = Workflow.from_dict(_walk(Workflow(), _TO_VALIDATING).to_dict())
    assert wf.transition("VALIDATION_PASSED").target == "COMPLETED"


def _good() -> dict:
    return _walk(Workflow("w1"), ["START", "ANALYZED"]).to_dict()


def _set(path, value):
    def change(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return d

    return change


def _drop(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


BAD_DICTS = {
    "not a dict": (lambda d: [d], "expected a dict"),
    "unknown key": (_set(["colour"], "red"), "unknown keys"),
    "no state": (_drop("state"), "missing keys"),
    "empty id": (_set(["workflow_id"], ""), "workflow_id"),
    "unknown state": (_set(["state"], "RUNNING"), "unknown state 'RUNNING'"),
    "context not a dict": (_set(["context"], "x"), "context must be a dict"),
    "negative max_retries": (_set(["max_retries"], -1), "max_retries"),
    "history not a list": (_set(["history"], {}), "history must be a list"),
    "unknown event": (_set(["history", 0, "event"], "LAUNCH"), "unknown event 'LAUNCH'"),
    "step missing a key": (lambda d: (d["history"][0].pop("ts"), d)[1], "exactly the keys"),
    "step not a dict": (_set(["history", 0], "START"), "exactly the keys"),
    "not a transition": (_set(["history", 0, "target"], "COMPLETED"), "is not a transition"),
    "broken chain": (
        lambda d: {**d, "history": [d["history"][1], d["history"][0]]},
        "previous step ended",
    ),
    "history not ending in state": (_set(["state"], "ANALYZING"), "history ends in"),
    "state without history": (_set(["history"], []), "history ends in IDLE"),
    "step context not a dict": (_set(["history", 1, "context"], 3), "dict context"),
    "ts not a string": (_set(["created"], 5), "created must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_DICTS))
def test_from_dict_rejects_malformed_input_clearly(case):
    """Unknown states and events, malformed or inconsistent history: WorkflowError saying what."""
    change, message = BAD_DICTS[case]
    with pytest.raises(WorkflowError, match=message):
        Workflow.from_dict(change(copy.deepcopy(_good())))


def test_from_dict_rejects_more_retries_than_the_bound():
    """A history with more RETRY steps than max_retries cannot be restored."""
    data = _walk(Workflow(max_retries=1), [*_TO_VALIDATING, "RETRY"]).to_dict()
    data["max_retries"] = 0
    with pytest.raises(WorkflowError, match="more RETRY steps"):
        Workflow.from_dict(data)


def test_workflow_from_dict_saves_into_the_database(kit, db_path):
    """kit.workflow_from_dict stores the workflow and its history; a fresh Kit loads it."""
    data = _walk(Workflow("imported"), ["START", "ANALYZED"]).to_dict()
    wf = kit.workflow_from_dict(data)
    wf.transition("MODEL_SELECTED", {"model": "m"})
    with ims_kit.open(db_path) as fresh:
        assert fresh.workflow("imported").to_dict() == wf.to_dict()
        assert [w.transitions for w in fresh.workflows()] == [3]


def test_importing_twice_is_harmless_but_a_different_workflow_is_refused(kit):
    """The same dict imports twice; another history under the same id is a WorkflowError."""
    data = _walk(Workflow("same"), ["START"]).to_dict()
    kit.workflow_from_dict(data)
    assert kit.workflow_from_dict(data).to_dict() == data
    other = _walk(Workflow("same"), ["START", "ANALYZED"]).to_dict()
    with pytest.raises(WorkflowError, match="already in the database"):
        kit.workflow_from_dict(other)


# -- diagrams and Jupyter ------------------------------------------------------------------------
def test_diagram_is_mermaid_with_every_state_and_the_current_one_highlighted():
    """wf.diagram() is stateDiagram-v2 text, needs no Graphviz and marks the current state."""
    text = _walk(Workflow(), REACH["EXECUTING"]).diagram()
    assert text.startswith("stateDiagram-v2")
    assert all(state in text for state in STATES)
    assert "VALIDATING --> SELECTING_MODEL : RETRY [retries_left]" in text
    assert "EXECUTING:::active" in text and "on_enter_state" not in text


def test_jupyter_without_graphviz_shows_the_mermaid_text(monkeypatch):
    """Without `dot` there is no SVG and the HTML is the escaped mermaid text in a <pre>."""
    monkeypatch.setattr(wfmod.shutil, "which", lambda name: None)
    wf = Workflow("jup")
    assert wf._repr_svg_() is None
    page = wf._repr_html_()
    assert "<pre>stateDiagram-v2" in page and "--&gt;" in page and "jup: IDLE" in page


def test_jupyter_falls_back_when_dot_is_there_but_rendering_fails(monkeypatch):
    """A `dot` on PATH without pydot (or failing) still gives the readable HTML fallback."""
    monkeypatch.setattr(wfmod.shutil, "which", lambda name: "/usr/bin/dot")

    def svg_fails(machine, spec):
        if spec == "svg":
            raise RuntimeError("dot failed")
        return format(machine, spec)

    monkeypatch.setattr(wfmod, "format", svg_fails, raising=False)
    wf = Workflow()
    assert wf._repr_svg_() is None and "<pre>" in wf._repr_html_()


def test_repr_names_id_state_and_length():
    """repr shows the id, the state and how many transitions there were."""
    assert repr(_walk(Workflow("r1"), ["START"])) == "<Workflow r1 ANALYZING, 1 transitions>"


def test_public_names_are_exported():
    """The workflow's names are reachable from the package."""
    assert ims_kit.Workflow is Workflow and ims_kit.WorkflowState is WorkflowState
    assert ims_kit.InvalidTransition is InvalidTransition and ims_kit.Transition is Transition
