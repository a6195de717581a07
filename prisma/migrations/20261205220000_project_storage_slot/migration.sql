-- Two fixes to the running total of 20261205214500_project_storage_total:
-- * A slot from the asset id's hash taken as a bigint: abs() of hashtext's one value of -2^31 is out of integer range
--   and would have refused that asset's insert. Every other id keeps its slot.
-- * Bytes taken away are added as a negative amount to the asset's slot even when that slot has no row yet (assets
--   counted by that migration's backfill sit in slot 0): an UPDATE alone lost them. A slot may go below zero, only
--   the project's sum means anything. Nothing is written for a project that is being deleted (its assets cascading).
-- Prisma splits a migration at every semicolon, even inside quotes, so the body's semicolons are written as \073.
CREATE OR REPLACE FUNCTION tessera_add_stored_bytes(project text, asset text, delta bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS E'
BEGIN
  IF delta = 0 THEN
    RETURN\073
  END IF\073
  INSERT INTO "ProjectStorage" ("projectId", slot, bytes)
    SELECT project, abs(hashtext(asset)::bigint) % 8, delta WHERE EXISTS (SELECT 1 FROM "Project" p WHERE p.id = project)
    ON CONFLICT ("projectId", slot) DO UPDATE SET bytes = "ProjectStorage".bytes + EXCLUDED.bytes\073
END
';
