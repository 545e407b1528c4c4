-- The audit trail (AuditEvents, one per interaction) is stored as ordinary resources but left out of the
-- system history: `GET [base]/_history` walks `resource_version` by `seq` with `res_type <> 'AuditEvent'`,
-- and this partial index holds only the other versions, so the walk never steps over audit records.
CREATE INDEX resource_version_changes ON resource_version (seq) WHERE res_type <> 'AuditEvent';
