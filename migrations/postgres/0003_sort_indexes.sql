-- Per-resource index lookups name the parameter too, and cover the column a sort reads: the sort value of
-- each match (`_sort`) and the replacement of a resource's rows both find their rows by key, without the
-- planner falling back to the (res_type, param, value) index and walking every row of the parameter.
-- Each replaces the (res_type, res_id) index of its table, whose lookups it also serves.

DROP INDEX idx_token_resource;
CREATE INDEX idx_token_resource ON idx_token (res_type, res_id, param, code);
DROP INDEX idx_string_resource;
CREATE INDEX idx_string_resource ON idx_string (res_type, res_id, param, normalized);
DROP INDEX idx_date_resource;
CREATE INDEX idx_date_resource ON idx_date (res_type, res_id, param, low);
DROP INDEX idx_reference_resource;
CREATE INDEX idx_reference_resource ON idx_reference (res_type, res_id, param, target_id);
DROP INDEX idx_quantity_resource;
CREATE INDEX idx_quantity_resource ON idx_quantity (res_type, res_id, param, value);
DROP INDEX idx_number_resource;
CREATE INDEX idx_number_resource ON idx_number (res_type, res_id, param, value);
DROP INDEX idx_uri_resource;
CREATE INDEX idx_uri_resource ON idx_uri (res_type, res_id, param, uri);
