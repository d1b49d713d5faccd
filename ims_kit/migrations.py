"""The schema history, append-only: never edit a step that has shipped, add a new one.

Each step runs in its own transaction (``sqlite_utils.Migrations``); ``db.open_db`` runs
them all under ``BEGIN IMMEDIATE`` so two processes opening a new file do not race. This
module imports nothing of ims_kit's but the sqlite-utils loader: ``db`` imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ims_kit.sqlite_lib import sqlite_utils

if TYPE_CHECKING:
    from sqlite_utils import Database

migrations = sqlite_utils().Migrations("ims_kit")


@migrations()
def m001_initial(db: Database) -> None:
    """The six tables of DESIGN.md; names and columns are part of the product."""
    _run(
        db,
        """
        CREATE TABLE models (
            model_id TEXT PRIMARY KEY,
            vendor TEXT NOT NULL,
            display_name TEXT NOT NULL,
            provider TEXT NOT NULL,
            api_model TEXT NOT NULL,
            base_url TEXT,
            context_window INTEGER NOT NULL,
            max_output_tokens INTEGER NOT NULL,
            cost_per_mil_in REAL,          -- NULL = unpriced, never silently 0
            cost_per_mil_out REAL,
            capabilities TEXT NOT NULL DEFAULT '[]',   -- JSON list
            quality REAL,                  -- 0-100
            quality_source TEXT,           -- the public benchmark the score comes from
            active INTEGER NOT NULL DEFAULT 1,
            price_source TEXT,
            as_of TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE INDEX idx_models_vendor ON models (vendor);

        CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            call_id TEXT NOT NULL UNIQUE,
            ts TEXT NOT NULL,
            session_id TEXT,
            workflow_id TEXT,
            model_id TEXT NOT NULL,
            vendor_id TEXT,
            provider TEXT,                 -- 'simulated' marks simulated traffic
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            token_source TEXT,             -- provider | estimate
            cost_per_mil_in REAL,
            cost_per_mil_out REAL,
            cost_usd REAL,                 -- NULL when the model is unpriced
            latency_ms REAL,
            success INTEGER NOT NULL,
            error_kind TEXT,
            attempt INTEGER NOT NULL DEFAULT 1,
            fallback_from TEXT,
            strategy TEXT
        );
        CREATE INDEX idx_usage_ts ON usage (ts);
        CREATE INDEX idx_usage_model_ts ON usage (model_id, ts);
        CREATE INDEX idx_usage_session ON usage (session_id);
        CREATE INDEX idx_usage_workflow ON usage (workflow_id);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT,
            payload TEXT NOT NULL DEFAULT '{}'  -- JSON object
        );
        CREATE INDEX idx_events_kind_subject ON events (kind, subject);
        CREATE INDEX idx_events_ts ON events (ts);

        CREATE TABLE circuits (
            model_id TEXT PRIMARY KEY,
            state TEXT NOT NULL DEFAULT 'closed',   -- closed | open | half_open
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            opened_at TEXT,
            last_error_kind TEXT,
            updated TEXT NOT NULL
        );

        CREATE TABLE workflows (
            workflow_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            context TEXT NOT NULL DEFAULT '{}',     -- JSON object
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE INDEX idx_workflows_state ON workflows (state, updated);

        CREATE TABLE workflow_transitions (
            id INTEGER PRIMARY KEY,
            workflow_id TEXT NOT NULL REFERENCES workflows (workflow_id),
            ts TEXT NOT NULL,
            event TEXT NOT NULL,
            source TEXT NOT NULL,
            target TEXT NOT NULL,
            context TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX idx_transitions_workflow ON workflow_transitions (workflow_id, id);
        """,
    )


@migrations()
def m002_circuit_probe(db: Database) -> None:
    """Half-open breakers let exactly one probe through, across processes: remember when the
    probe slot was taken, so a probe whose process died frees it after a while."""
    db.execute("ALTER TABLE circuits ADD COLUMN probe_started_at TEXT")


@migrations()
def m003_usage_text(db: Database) -> None:
    """Optional prompt and answer text, filled only with store_text=True (privacy default)."""
    db.execute("ALTER TABLE usage ADD COLUMN prompt TEXT")
    db.execute("ALTER TABLE usage ADD COLUMN response TEXT")


@migrations()
def m004_workflow_retries(db: Database) -> None:
    """A workflow's bound on its VALIDATING -> SELECTING_MODEL retries is part of its definition:
    keep it with the workflow so that a workflow restored in another process keeps its bound."""
    db.execute("ALTER TABLE workflows ADD COLUMN max_retries INTEGER NOT NULL DEFAULT 2")


@migrations()
def m005_circuit_retry_at(db: Database) -> None:
    """Store when an open circuit retries: a process with another open period (the
    dashboard, `ims status`) must not recompute it from its own setting."""
    from datetime import datetime, timedelta

    db.execute("ALTER TABLE circuits ADD COLUMN retry_at TEXT")
    opened = db.execute("SELECT model_id, opened_at FROM circuits WHERE opened_at IS NOT NULL")
    for model_id, opened_at in opened.fetchall():  # the default 60 s period, for older rows
        retry_at = (datetime.fromisoformat(opened_at) + timedelta(seconds=60)).isoformat()
        db.execute("UPDATE circuits SET retry_at = ? WHERE model_id = ?", [retry_at, model_id])


@migrations()
def m006_usage_request(db: Database) -> None:
    """Keep requests and attempts apart: every attempt of one request carries its id, and
    ``attempt`` numbers only the attempts that reached a provider (1 = the request's first),
    so requests are counted as ``attempt = 1`` rows."""
    db.execute("ALTER TABLE usage ADD COLUMN request_id TEXT")


@migrations()
def m007_circuit_scopes(db: Database) -> None:
    """Breakers for endpoints as well as models, and for simulated calls apart from real ones:
    a refused connection rules out every model behind that base URL, and neither a real outage
    nor a simulated fault may close the door on the other. The key becomes (model_id, scope,
    simulated); existing rows are real model breakers."""
    _run(
        db,
        """
        CREATE TABLE circuits_scoped (
            model_id TEXT NOT NULL,                -- the model id, or an endpoint's base URL
            state TEXT NOT NULL DEFAULT 'closed',  -- closed | open | half_open
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            opened_at TEXT,
            last_error_kind TEXT,
            updated TEXT NOT NULL,
            probe_started_at TEXT,
            retry_at TEXT,
            scope TEXT NOT NULL DEFAULT 'model',   -- model | endpoint
            simulated INTEGER NOT NULL DEFAULT 0,  -- 1: the breaker of simulated calls
            PRIMARY KEY (model_id, scope, simulated)
        );
        INSERT INTO circuits_scoped (model_id, state, consecutive_failures, opened_at,
                                     last_error_kind, updated, probe_started_at, retry_at)
            SELECT model_id, state, consecutive_failures, opened_at, last_error_kind, updated,
                   probe_started_at, CASE WHEN state = 'closed' THEN NULL ELSE retry_at END
            FROM circuits;
        DROP TABLE circuits;
        ALTER TABLE circuits_scoped RENAME TO circuits
        """,
    )


@migrations()
def m008_streams_and_options(db: Database) -> None:
    """A streamed call's time to first token, and the generation options a model refuses
    (sent, they would fail the call remotely; listed, they are dropped with the reason)."""
    db.execute("ALTER TABLE usage ADD COLUMN ttft_ms REAL")
    db.execute("ALTER TABLE models ADD COLUMN unsupported_options TEXT NOT NULL DEFAULT '[]'")


@migrations()
def m009_budgets(db: Database) -> None:
    """Spending caps and the money set aside for calls in flight (see ``ims_kit.budgets``)."""
    _run(
        db,
        """
        CREATE TABLE budgets (
            id INTEGER PRIMARY KEY,
            limit_usd REAL NOT NULL,
            period TEXT NOT NULL,              -- day | week | month | total (calendar, UTC)
            vendor TEXT,                       -- NULL: any vendor
            model TEXT,                        -- NULL: any model
            simulated INTEGER NOT NULL DEFAULT 0,  -- 1: caps simulated calls, not real ones
            allow_unpriced INTEGER NOT NULL DEFAULT 0,
            warn_at REAL,                      -- share of the limit that emits budget.warning
            spent_usd REAL NOT NULL DEFAULT 0, -- in the period starting at period_start
            period_start TEXT,
            warned_period TEXT,                -- the period budget.warning was emitted in
            created TEXT NOT NULL
        );
        CREATE TABLE budget_reservations (
            id TEXT NOT NULL,                  -- one attempt's reservation
            budget_id INTEGER NOT NULL,
            amount_usd REAL NOT NULL,
            created TEXT NOT NULL,
            expires TEXT NOT NULL,
            pid INTEGER,                       -- the reserving process: gone means stale
            PRIMARY KEY (id, budget_id)
        )
        """,
    )


@migrations()
def m010_batch_items(db: Database) -> None:
    """What each prompt of a named batch came to, so that a rerun resumes."""
    _run(
        db,
        """
        CREATE TABLE batch_items (
            batch TEXT NOT NULL,
            item INTEGER NOT NULL,            -- the prompt's position in the batch
            digest TEXT NOT NULL,             -- of what it asks: an edited prompt is asked again
            answer TEXT,                      -- the Answer as JSON, NULL while it has none
            error TEXT,                       -- what ended it last time, if it failed
            updated TEXT NOT NULL,
            PRIMARY KEY (batch, item)
        )
        """,
    )


@migrations()
def m011_state_version(db: Database) -> None:
    """One counter that every change of the registry, the breakers or the set of budgets moves
    (by triggers, whichever process or program writes), so that a call reads it once instead
    of re-reading those tables: they change rarely, calls are many."""
    db.execute("CREATE TABLE state_version (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER)")
    db.execute("INSERT INTO state_version (id, n) VALUES (1, 0)")
    changes = [(t, c) for t in ("models", "circuits") for c in ("INSERT", "UPDATE", "DELETE")]
    changes += [("budgets", "INSERT"), ("budgets", "DELETE")]  # spending is not a change of them
    for table, change in changes:
        db.execute(
            f"CREATE TRIGGER {table}_{change.lower()}_moves_state AFTER {change} ON {table}"
            " BEGIN UPDATE state_version SET n = n + 1 WHERE id = 1; END"
        )


@migrations()
def m012_feedback(db: Database) -> None:
    """Verdicts on answers (a user's, the workflow's validations): a router's labels."""
    _run(
        db,
        """
        CREATE TABLE feedback (
            call_id TEXT NOT NULL,              -- the usage row of the judged answer
            source TEXT NOT NULL,               -- user | validation
            good INTEGER NOT NULL,
            note TEXT,
            ts TEXT NOT NULL,
            PRIMARY KEY (call_id, source)
        )
        """,
    )


@migrations()
def m013_routed_prompt(db: Database) -> None:
    """The text a learned router reads (the latest user turn), kept with the prompt when it
    differs from it, so that routers trained on history learn from what they will score."""
    db.execute("ALTER TABLE usage ADD COLUMN routed_prompt TEXT")


@migrations()
def m014_usage_workflow_index_partial(db: Database) -> None:
    """Index only the rows of workflows: a call outside one (most calls) then writes one index
    page fewer when it commits (what a call waits for its usage row)."""
    db.execute("DROP INDEX idx_usage_workflow")
    db.execute(
        "CREATE INDEX idx_usage_workflow ON usage (workflow_id) WHERE workflow_id IS NOT NULL"
    )


@migrations()
def m015_executed_events_are_usage_rows(db: Database) -> None:
    """``model.executed`` is read from the usage rows (``ims_kit.events``): the copies in
    ``events`` go."""
    db.execute("DELETE FROM events WHERE kind = 'model.executed'")


def _run(db: Database, script: str) -> None:
    """Execute statements one by one: ``executescript`` would COMMIT the step's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def migrate(db: Database) -> None:
    """Apply every pending step."""
    migrations.apply(db)


def schema_version(db: Database) -> int:
    """How many steps of the history this file has applied."""
    return len(migrations.applied(db))
