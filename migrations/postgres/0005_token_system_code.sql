-- Conditional matching looks resources up by `identifier=system|value`: an equality on system and code.
-- The (res_type, param, system) index served that by walking every row of the system and testing the code
-- on each (all identifiers of a type share one system, so every lookup read them all, dead rows included),
-- and the planner chose it over (res_type, param, code, system) whenever it had no statistics or a generic
-- plan. With the code as its last column, either index finds the one value directly; searches on a system
-- alone (`identifier=system|`) still use its prefix.

SET LOCAL statement_timeout = 0;

DROP INDEX idx_token_system;
CREATE INDEX idx_token_system ON idx_token (res_type, param, system, code);
