-- The client that submitted each asynchronous request (`--auth smart`: the access token's client id; NULL
-- under `--auth none` and for jobs queued before this column existed): only that client may read or cancel
-- the job's status URL.

ALTER TABLE async_job ADD COLUMN owner TEXT;
