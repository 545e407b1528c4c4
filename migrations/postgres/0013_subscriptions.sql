-- Subscriptions (R4 classic and Subscriptions Backport topic-based) and their durable outbox.
--
-- `subscription` holds the delivery state of each stored Subscription resource (written in the transaction of
-- the Subscription's own version): what it matches (`res_type` and the search `criteria`, a query string; a
-- topic subscription's criteria are its topic's trigger with its filters), `base` (the FHIR base URL the
-- Subscription was written at, for the addresses notifications carry), `state` ('active', 'error', 'off'),
-- `events` (the number of the last event recorded), `delivered` (the number of the last event the receiver
-- acknowledged), the retry schedule (`attempts` since the last success, `failing_since`, `next_attempt`), the
-- last failure (`error`), the claim of the dispatcher delivering it (`claimed_by`, `lease_until`) and the time
-- of the last notification sent (`last_sent`, for heartbeats).
--
-- `subscription_event` is the outbox: one row per event, numbered per subscription, inserted in the same
-- transaction as the change that caused it (the number is taken by incrementing `subscription.events`, whose
-- row lock orders the writers of one subscription, so numbers follow commit order).
--
-- `subscription_attempt` records each delivery attempt: when, the events it carried, the HTTP status (NULL when
-- no answer came) and the error text. Timestamps are milliseconds since the Unix epoch.

CREATE TABLE subscription (
    id            TEXT    NOT NULL PRIMARY KEY,
    kind          TEXT    NOT NULL,
    res_type      TEXT    NOT NULL,
    criteria      TEXT    NOT NULL,
    base          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    events        BIGINT  NOT NULL DEFAULT 0,
    delivered     BIGINT  NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    failing_since BIGINT,
    next_attempt  BIGINT  NOT NULL,
    error         TEXT,
    claimed_by    TEXT,
    lease_until   BIGINT,
    heartbeat_ms  BIGINT,
    last_sent     BIGINT  NOT NULL
);
CREATE INDEX subscription_matching ON subscription (res_type, state);
CREATE INDEX subscription_due ON subscription (state, next_attempt);

CREATE TABLE subscription_event (
    sub_id   TEXT   NOT NULL,
    event_no BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    res_id   TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    recorded BIGINT NOT NULL,
    PRIMARY KEY (sub_id, event_no)
);

CREATE TABLE subscription_attempt (
    sub_id      TEXT    NOT NULL,
    attempt_at  BIGINT  NOT NULL,
    first_event BIGINT  NOT NULL,
    last_event  BIGINT  NOT NULL,
    http_status INTEGER,
    error       TEXT
);
CREATE INDEX subscription_attempt_by_sub ON subscription_attempt (sub_id, attempt_at);
