-- The audit trail in a table of its own: one row per AuditEvent, appended and never changed, with the values
-- its searches filter on as columns (instead of a resource row, a version row and fourteen index rows in five
-- tables each). `recorded` is AuditEvent.recorded in milliseconds since the Unix epoch (also the event's
-- meta.lastUpdated); `patient` the id of the Patient entity; `agent` the user agent's `who` (`Type/id`
-- when the reference ends so, else as written); `entity` the resource entity as `Type/id`, with its version
-- in `entity_version`; `altid`
-- and `client_issuer` the client agent's client_id and the issuer of its identifier; `policy` the token's `jti`
-- URI; `address` the client's network address. Events stored as resources by an
-- earlier version are moved here when the server starts (`Engine::adopt_audit_resources`).
CREATE TABLE audit_event (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT   NOT NULL,
    recorded       BIGINT NOT NULL,
    type_system    TEXT,
    type_code      TEXT,
    subtype_system TEXT,
    subtype_code   TEXT,
    action         TEXT,
    outcome        TEXT,
    patient        TEXT,
    agent          TEXT,
    entity         TEXT,
    entity_version TEXT,
    altid          TEXT,
    client_issuer  TEXT,
    policy         TEXT,
    address        TEXT,
    body           TEXT   NOT NULL
);
CREATE UNIQUE INDEX audit_event_id ON audit_event (id);
CREATE INDEX audit_event_recorded ON audit_event (recorded, id);
CREATE INDEX audit_event_patient ON audit_event (patient, recorded, id) WHERE patient IS NOT NULL;
CREATE INDEX audit_event_agent ON audit_event (agent, recorded, id) WHERE agent IS NOT NULL;
CREATE INDEX audit_event_entity ON audit_event (entity, recorded, id) WHERE entity IS NOT NULL;
-- Compressed with LZ4 where the server has it, as the resource bodies are (migration 0009).
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000
       AND EXISTS (SELECT 1 FROM pg_settings
                   WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE audit_event ALTER COLUMN body SET COMPRESSION lz4';
    END IF;
END
$$;
