-- Asynchronous Bundle submissions (`Prefer: respond-async`). A job is committed here before its 202 is sent;
-- a worker claims it (`claimed_by`, `lease_until`: a dead worker's job is claimed again once its lease
-- has passed), runs it, and writes its completion (`state` 'done', `status`, `response`) in the same
-- transaction as the Bundle's writes. A batch records each entry's rendered response in `async_job_entry`
-- in the transaction of that entry's writes, so a resumed batch skips the entries already done.
-- state: 'queued', 'running', 'done', or 'cancelled' (cancelled while running: the running work cannot
-- finish it). Timestamps are milliseconds since the Unix epoch.

CREATE TABLE async_job (
    id          TEXT    NOT NULL PRIMARY KEY,
    state       TEXT    NOT NULL,
    body        BLOB   NOT NULL,
    base        TEXT    NOT NULL,
    prefer      TEXT    NOT NULL,
    enqueued_at BIGINT  NOT NULL,
    claimed_by  TEXT,
    lease_until BIGINT,
    progress    TEXT,
    finished_at BIGINT,
    status      INTEGER,
    response    TEXT
);
CREATE INDEX async_job_queue ON async_job (state, enqueued_at);
CREATE INDEX async_job_finished ON async_job (finished_at);

CREATE TABLE async_job_entry (
    job_id   TEXT    NOT NULL,
    entry    INTEGER NOT NULL,
    response TEXT    NOT NULL,
    PRIMARY KEY (job_id, entry)
);
