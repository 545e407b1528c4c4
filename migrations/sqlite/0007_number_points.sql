-- A stored number or quantity is an exact point: R4 compares "the stored value as is" with the precision
-- range of the search value (`length=45.0` is [44.95, 45.05) and finds a stored 45; a stored 45.4 is not
-- found). The rows' own precision ranges (`low`, `high`) are no longer compared, so they go, and the value
-- index is on the exact `value`, which every row already holds: existing rows need no recomputing and no
-- reindex.

DROP INDEX idx_quantity_value;
ALTER TABLE idx_quantity DROP COLUMN low;
ALTER TABLE idx_quantity DROP COLUMN high;
CREATE INDEX idx_quantity_value ON idx_quantity (res_type, param, value);

DROP INDEX idx_number_value;
ALTER TABLE idx_number DROP COLUMN low;
ALTER TABLE idx_number DROP COLUMN high;
CREATE INDEX idx_number_value ON idx_number (res_type, param, value);
