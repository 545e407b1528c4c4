-- Resource storage: the current version of each resource, every version ever written, and the first
-- search index table. Bodies are stored as the exact JSON text served to clients (see ARCHITECTURE.md:
-- jsonb would reorder elements and drop duplicate keys); timestamps are milliseconds since the Unix epoch.

CREATE TABLE resource (
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    last_updated BIGINT  NOT NULL,
    deleted      BOOLEAN NOT NULL,
    body         TEXT,
    PRIMARY KEY (res_type, res_id)
);

-- Append-only. seq is the system-wide change sequence that orders system and type history.
CREATE TABLE resource_version (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    res_type     TEXT   NOT NULL,
    res_id       TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    method       TEXT   NOT NULL,
    body         TEXT,
    UNIQUE (res_type, res_id, version)
);
CREATE INDEX resource_version_type_seq ON resource_version (res_type, seq);

-- Token index rows (derived data: recomputable from resource.body).
CREATE TABLE idx_token (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT,
    code     TEXT
);
CREATE INDEX idx_token_value ON idx_token (res_type, param, code, system);
CREATE INDEX idx_token_resource ON idx_token (res_type, res_id);
