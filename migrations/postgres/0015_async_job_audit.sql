-- Who submitted each asynchronous request, as the audit trail names them (`--audit on`: the user, the client,
-- the token and the network peer, as JSON): the worker that runs the job later records each entry's AuditEvent
-- with these agents. NULL under `--audit off` and for jobs queued before this column existed.
ALTER TABLE async_job ADD COLUMN audit TEXT;
