-- The bytes each project stores, as a running total kept by the Asset rows' own triggers (issue #20): an upload's
-- storage quota check read sum("byteSize") over every asset of its project, a scan that grew with the project. The
-- total changes in the same transaction as the rows, so it is as exact and crash-proof as the sum was. Eight slots
-- per project (picked by the asset's id) so concurrent uploads of one project do not queue on one row's lock.
-- Prisma (its WebAssembly schema engine) splits a migration at every semicolon, even inside quotes, so the trigger
-- function's body is an escaped string with each semicolon written as \073.
CREATE TABLE "ProjectStorage" (
    "projectId" TEXT NOT NULL,
    "slot" SMALLINT NOT NULL,
    "bytes" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "ProjectStorage_pkey" PRIMARY KEY ("projectId","slot")
);

ALTER TABLE "ProjectStorage" ADD CONSTRAINT "ProjectStorage_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Adds `delta` bytes to a project's total. A project being deleted (its assets cascading) has no row to take from.
CREATE FUNCTION tessera_add_stored_bytes(project text, asset text, delta bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS E'
BEGIN
  IF delta = 0 THEN
    RETURN\073
  END IF\073
  IF delta < 0 THEN
    UPDATE "ProjectStorage" SET bytes = bytes + delta WHERE "projectId" = project AND slot = abs(hashtext(asset)) % 8\073
    RETURN\073
  END IF\073
  INSERT INTO "ProjectStorage" ("projectId", slot, bytes) VALUES (project, abs(hashtext(asset)) % 8, delta)
    ON CONFLICT ("projectId", slot) DO UPDATE SET bytes = "ProjectStorage".bytes + EXCLUDED.bytes\073
END
';

CREATE FUNCTION tessera_count_asset_bytes() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS E'
BEGIN
  IF TG_OP IN (''UPDATE'', ''DELETE'') THEN
    PERFORM tessera_add_stored_bytes(OLD."projectId", OLD.id, -OLD."byteSize")\073
  END IF\073
  IF TG_OP IN (''INSERT'', ''UPDATE'') THEN
    PERFORM tessera_add_stored_bytes(NEW."projectId", NEW.id, NEW."byteSize")\073
  END IF\073
  RETURN NULL\073
END
';

CREATE TRIGGER "Asset_stored_bytes" AFTER INSERT OR DELETE OR UPDATE OF "byteSize", "projectId" ON "Asset"
  FOR EACH ROW EXECUTE FUNCTION tessera_count_asset_bytes();

-- The totals of the assets stored before this migration, in slot 0 (later changes spread over the slots).
INSERT INTO "ProjectStorage" ("projectId", slot, bytes)
  SELECT "projectId", 0, sum("byteSize") FROM "Asset" GROUP BY "projectId";
