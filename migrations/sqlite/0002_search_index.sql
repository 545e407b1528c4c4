-- Search index tables, one per search parameter type (derived data: `imaging-cdr reindex` rebuilds them from
-- resource.body). Every row names its resource (res_type, res_id) and parameter code (param).
-- Composite parameters store each component in its type's table under the parameter code `code$N`
-- (N = component position), with the same grp number for the components of one composite value;
-- rows of ordinary parameters have grp 0.
-- Dates are [low, high) microseconds since the Unix epoch; numbers and quantities keep their precision
-- range [low, high) and their value as double precision.
-- SQLite compares text byte by byte (BINARY), so prefix range scans need no collation.

DROP TABLE idx_token;

CREATE TABLE idx_token (
    res_type    TEXT NOT NULL,
    res_id      TEXT NOT NULL,
    param       TEXT NOT NULL,
    grp         BIGINT NOT NULL DEFAULT 0,
    system      TEXT,
    code        TEXT,
    text        TEXT,
    type_system TEXT,
    type_code   TEXT
);
CREATE INDEX idx_token_value ON idx_token (res_type, param, code, system);
CREATE INDEX idx_token_system ON idx_token (res_type, param, system);
CREATE INDEX idx_token_text ON idx_token (res_type, param, text);
CREATE INDEX idx_token_resource ON idx_token (res_type, res_id);

CREATE TABLE idx_string (
    res_type   TEXT NOT NULL,
    res_id     TEXT NOT NULL,
    param      TEXT NOT NULL,
    grp        BIGINT NOT NULL DEFAULT 0,
    normalized TEXT NOT NULL,
    exact      TEXT NOT NULL
);
CREATE INDEX idx_string_value ON idx_string (res_type, param, normalized);
CREATE INDEX idx_string_resource ON idx_string (res_type, res_id);

CREATE TABLE idx_date (
    res_type TEXT   NOT NULL,
    res_id   TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    grp      BIGINT NOT NULL DEFAULT 0,
    low      BIGINT NOT NULL,
    high     BIGINT NOT NULL
);
CREATE INDEX idx_date_low ON idx_date (res_type, param, low, high);
CREATE INDEX idx_date_high ON idx_date (res_type, param, high);
CREATE INDEX idx_date_resource ON idx_date (res_type, res_id);

CREATE TABLE idx_reference (
    res_type    TEXT NOT NULL,
    res_id      TEXT NOT NULL,
    param       TEXT NOT NULL,
    grp         BIGINT NOT NULL DEFAULT 0,
    target_type TEXT,
    target_id   TEXT,
    version     TEXT,
    url         TEXT,
    id_system   TEXT,
    id_value    TEXT
);
CREATE INDEX idx_reference_forward ON idx_reference (res_type, param, target_type, target_id);
CREATE INDEX idx_reference_reverse ON idx_reference (target_type, target_id, res_type, param);
CREATE INDEX idx_reference_url ON idx_reference (res_type, param, url);
CREATE INDEX idx_reference_identifier ON idx_reference (res_type, param, id_value, id_system);
CREATE INDEX idx_reference_resource ON idx_reference (res_type, res_id);

CREATE TABLE idx_quantity (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    grp      BIGINT NOT NULL DEFAULT 0,
    system   TEXT,
    code     TEXT,
    unit     TEXT,
    low      REAL NOT NULL,
    high     REAL NOT NULL,
    value    REAL NOT NULL
);
CREATE INDEX idx_quantity_value ON idx_quantity (res_type, param, low, high);
CREATE INDEX idx_quantity_resource ON idx_quantity (res_type, res_id);

CREATE TABLE idx_number (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    grp      BIGINT NOT NULL DEFAULT 0,
    low      REAL NOT NULL,
    high     REAL NOT NULL,
    value    REAL NOT NULL
);
CREATE INDEX idx_number_value ON idx_number (res_type, param, low, high);
CREATE INDEX idx_number_resource ON idx_number (res_type, res_id);

CREATE TABLE idx_uri (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    grp      BIGINT NOT NULL DEFAULT 0,
    uri      TEXT NOT NULL
);
CREATE INDEX idx_uri_value ON idx_uri (res_type, param, uri);
CREATE INDEX idx_uri_resource ON idx_uri (res_type, res_id);

-- Type searches without criteria page through live resources in id order, or in _lastUpdated order.
CREATE INDEX resource_live ON resource (res_type, res_id) WHERE NOT deleted;
CREATE INDEX resource_live_updated ON resource (res_type, last_updated, res_id) WHERE NOT deleted;
