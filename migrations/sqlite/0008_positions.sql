-- Positions, for Location `near` (R4: [latitude]|[longitude]|[distance]|[units]): one row per position of a
-- resource (`Location.position`), in WGS84 degrees and as the unit vector (x, y, z) of the point on the
-- sphere, computed by cdr-search. A search tests the squared chord to the centre's unit vector, arithmetic both
-- databases do alike (SQLite has no trigonometric functions), within a latitude band read from the
-- (res_type, param, latitude) index. Composite components are never positions, but the table has `grp` and
-- `sort_role` like every index table.
-- The table starts empty: a database with Locations written before this migration needs `imaging-cdr reindex`
-- for `near` to find them.

CREATE TABLE idx_position (
    res_type  TEXT NOT NULL,
    res_id    TEXT NOT NULL,
    param     TEXT NOT NULL,
    grp       BIGINT NOT NULL DEFAULT 0,
    latitude  REAL NOT NULL,
    longitude REAL NOT NULL,
    x         REAL NOT NULL,
    y         REAL NOT NULL,
    z         REAL NOT NULL,
    sort_role INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_position_value ON idx_position (res_type, param, latitude);
CREATE INDEX idx_position_resource ON idx_position (res_type, res_id, param, latitude);
