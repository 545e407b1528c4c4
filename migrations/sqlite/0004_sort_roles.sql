-- Sort representatives. A sort on a parameter orders each resource by its lowest value (ascending) or its
-- highest (descending); `sort_role` marks the index row that holds it: 1 = lowest, 2 = highest, 3 = both
-- (a single value), 0 = neither (further values, composite components, values without a sort column).
-- A sorted search can then walk the parameter's rows in index order, one row per resource, and stop at
-- the page size instead of computing and sorting the sort value of every match. Existing rows get their
-- roles here; new rows get them when written (cdr-store, index.rs), by the same rule.

ALTER TABLE idx_token ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_token SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY code, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY code DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_token WHERE grp = 0 AND code IS NOT NULL
) w WHERE idx_token.rowid = w.row_ref AND w.role <> 0;

ALTER TABLE idx_string ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_string SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY normalized, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY normalized DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_string WHERE grp = 0 AND normalized IS NOT NULL
) w WHERE idx_string.rowid = w.row_ref AND w.role <> 0;

ALTER TABLE idx_date ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_date SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY low, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY low DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_date WHERE grp = 0 AND low IS NOT NULL
) w WHERE idx_date.rowid = w.row_ref AND w.role <> 0;

ALTER TABLE idx_reference ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_reference SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY target_id, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY target_id DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_reference WHERE grp = 0 AND target_id IS NOT NULL
) w WHERE idx_reference.rowid = w.row_ref AND w.role <> 0;

ALTER TABLE idx_quantity ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_quantity SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY value, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY value DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_quantity WHERE grp = 0 AND value IS NOT NULL
) w WHERE idx_quantity.rowid = w.row_ref AND w.role <> 0;

ALTER TABLE idx_number ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_number SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY value, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY value DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_number WHERE grp = 0 AND value IS NOT NULL
) w WHERE idx_number.rowid = w.row_ref AND w.role <> 0;

ALTER TABLE idx_uri ADD COLUMN sort_role INTEGER NOT NULL DEFAULT 0;
UPDATE idx_uri SET sort_role = w.role FROM (
    SELECT rowid AS row_ref,
        CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY uri, rowid) = 1 THEN 1 ELSE 0 END
        + CASE WHEN row_number() OVER (PARTITION BY res_type, res_id, param ORDER BY uri DESC, rowid) = 1 THEN 2 ELSE 0 END AS role
    FROM idx_uri WHERE grp = 0 AND uri IS NOT NULL
) w WHERE idx_uri.rowid = w.row_ref AND w.role <> 0;

-- The value indexes of the parameters most often sorted on end with the resource id, the tiebreaker of
-- every search order, so that a sorted page is one ordered index walk. Dates: the `low` index walks, the
-- `high` index (with `low`, so that it covers the `ge` test `high > a AND (low >= a OR high > b)`) bounds
-- range tests from below.
DROP INDEX idx_date_low;
CREATE INDEX idx_date_low ON idx_date (res_type, param, low, res_id);
DROP INDEX idx_date_high;
CREATE INDEX idx_date_high ON idx_date (res_type, param, high, low);
DROP INDEX idx_string_value;
CREATE INDEX idx_string_value ON idx_string (res_type, param, normalized, res_id);
DROP INDEX idx_uri_value;
CREATE INDEX idx_uri_value ON idx_uri (res_type, param, uri, res_id);
