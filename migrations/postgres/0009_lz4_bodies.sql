-- Resource bodies (and queued Bundles and their responses) are compressed with LZ4 instead of PostgreSQL's
-- default pglz, where the server has it (PostgreSQL 14 or later built with lz4, as the common distributions
-- are; elsewhere nothing changes). pglz tries to compress every large value and, on the base64 of a report's
-- PDF or a study of a hundred instances, compresses little and keeps the original after all the work: LZ4
-- makes the same attempt many times faster. Measured on imaging Bundles (bench/README.md): 1.2x the API's
-- ingest rate. Only values written from now on are compressed this way; existing ones stay readable as they are.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000
       AND EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE resource ALTER COLUMN body SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE resource_version ALTER COLUMN body SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE async_job ALTER COLUMN body SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE async_job ALTER COLUMN response SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE async_job_entry ALTER COLUMN response SET COMPRESSION lz4';
    END IF;
END
$$;
