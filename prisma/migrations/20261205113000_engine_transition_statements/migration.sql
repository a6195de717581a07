-- Two workflow-engine transitions as one statement each (issue #20): a statement commits whole or not at all.
-- Prisma (its WebAssembly schema engine) splits a migration at every semicolon, even inside quotes, so each body is
-- an escaped string with each semicolon written as \073. Each statement of a VOLATILE PL/pgSQL function reads with a
-- fresh snapshot: what is read after a lock sees everything committed by whoever held it before.

-- A map's item succeeded: under the map row's lock (taken before the item's row, as an advance takes the run's, then
-- the map's, then the items'), store the item's SUCCEEDED while it is still RUNNING, count the map's items and mark
-- the next PENDING ones QUEUED within the map's concurrency.
-- Returns {"finished": the item's end applied, "done": the map needs its run advanced (every item finished, or one
-- failed, or the map is no longer RUNNING), "queued": [{id, stepId, key, parentId, input}] to enqueue}.
CREATE FUNCTION tessera_finish_map_item("itemId" text, "runId" text, "mapId" text, output jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS E'
#variable_conflict use_variable
DECLARE
  map_status text\073
  concurrency integer\073
  finished boolean := false\073
  active integer\073
  pending integer\073
  broken integer\073
  room integer\073
  queued jsonb\073
BEGIN
  SELECT s.status::text, (s.input->>''concurrency'')::int INTO map_status, concurrency
    FROM "StepRun" s WHERE s.id = "mapId" AND s."runId" = "runId" FOR UPDATE\073
  UPDATE "StepRun" s SET status = ''SUCCEEDED'', output = tessera_finish_map_item.output, "finishedAt" = now() AT TIME ZONE ''UTC''
    WHERE s.id = "itemId" AND s."runId" = tessera_finish_map_item."runId" AND s.status = ''RUNNING''\073
  finished := FOUND\073
  IF map_status IS DISTINCT FROM ''RUNNING'' THEN
    RETURN jsonb_build_object(''finished'', finished, ''done'', true, ''queued'', ''[]''::jsonb)\073
  END IF\073
  SELECT count(*) FILTER (WHERE s.status IN (''QUEUED'', ''RUNNING'', ''WAITING'')), count(*) FILTER (WHERE s.status = ''PENDING''),
      count(*) FILTER (WHERE s.status IN (''FAILED'', ''CANCELLED''))
    INTO active, pending, broken FROM "StepRun" s WHERE s."parentId" = "mapId"\073
  IF broken > 0 OR pending = 0 THEN
    RETURN jsonb_build_object(''finished'', finished, ''done'', active = 0 OR broken > 0, ''queued'', ''[]''::jsonb)\073
  END IF\073
  room := greatest(0, COALESCE(concurrency, 1) - active)\073
  IF room = 0 THEN
    RETURN jsonb_build_object(''finished'', finished, ''done'', false, ''queued'', ''[]''::jsonb)\073
  END IF\073
  WITH picked AS (
    SELECT s.id FROM "StepRun" s WHERE s."parentId" = "mapId" AND s.status = ''PENDING'' ORDER BY length(s.key), s.key LIMIT room),
  marked AS (
    UPDATE "StepRun" s SET status = ''QUEUED'' FROM picked WHERE s.id = picked.id
    RETURNING s.id, s."stepId", s.key, s."parentId", s.input)
  SELECT COALESCE(jsonb_agg(jsonb_build_object(''id'', m.id, ''stepId'', m."stepId", ''key'', m.key, ''parentId'', m."parentId", ''input'', m.input)), ''[]''::jsonb)
    INTO queued FROM marked m\073
  RETURN jsonb_build_object(''finished'', finished, ''done'', false, ''queued'', queued)\073
END
';

-- An advance planned from a snapshot, written when the run still is as planned: locks the run row, stores the
-- finished step's SUCCEEDED (while RUNNING), then compares the run's status and the status of each top-level step
-- with `expected` ({"run": status, "steps": {id: status}}, as the plan read them, the finished step SUCCEEDED), read
-- afresh under the lock. Equal: the plan's step changes (as `writePlan` writes them) and the run's new state
-- (`runSet`: {status, started, ended, output, error}, or null) are written. Otherwise nothing but the step's end is.
-- Returns {"found", "finishedNow", "applied", "projectId", "parentStepRunId"}.
CREATE FUNCTION tessera_advance_planned("runId" text, finished jsonb, expected jsonb, changes jsonb, "runSet" jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS E'
#variable_conflict use_variable
DECLARE
  locked "Run"\073
  finished_now boolean := false\073
  current jsonb\073
  at timestamp(3) := now() AT TIME ZONE ''UTC''\073
BEGIN
  SELECT * INTO locked FROM "Run" r WHERE r.id = "runId" FOR UPDATE\073
  IF NOT FOUND THEN
    RETURN jsonb_build_object(''found'', false)\073
  END IF\073
  IF finished IS NOT NULL THEN
    UPDATE "StepRun" s SET status = ''SUCCEEDED'', output = finished->''output'', "finishedAt" = at
      WHERE s.id = finished->>''stepRunId'' AND s."runId" = "runId" AND s.status = ''RUNNING''\073
    finished_now := FOUND\073
  END IF\073
  SELECT COALESCE(jsonb_object_agg(s.id, s.status::text), ''{}''::jsonb) INTO current
    FROM "StepRun" s WHERE s."runId" = "runId" AND s."parentId" IS NULL\073
  IF locked.status::text IS DISTINCT FROM expected->>''run'' OR current IS DISTINCT FROM expected->''steps'' THEN
    RETURN jsonb_build_object(''found'', true, ''finishedNow'', finished_now, ''applied'', false)\073
  END IF\073
  UPDATE "StepRun" AS s SET
    status = c.status::"StepStatus",
    input = CASE WHEN c."setInput" THEN c.input ELSE s.input END,
    output = CASE WHEN c."setOutput" THEN c.output ELSE s.output END,
    error = CASE WHEN c."setError" THEN c.error ELSE s.error END,
    attempts = CASE WHEN c.started THEN s.attempts + 1 ELSE s.attempts END,
    "startedAt" = CASE WHEN c.started THEN COALESCE(s."startedAt", at) ELSE s."startedAt" END,
    "finishedAt" = CASE WHEN c.finished THEN at ELSE s."finishedAt" END
  FROM jsonb_to_recordset(changes) AS c(
    id text, status text, "setInput" boolean, input jsonb, "setOutput" boolean, output jsonb,
    "setError" boolean, error jsonb, started boolean, finished boolean)
  WHERE s.id = c.id AND s."runId" = "runId"\073
  IF "runSet" IS NOT NULL THEN
    UPDATE "Run" r SET
      status = ("runSet"->>''status'')::"RunStatus",
      "startedAt" = CASE WHEN ("runSet"->>''started'')::boolean THEN at ELSE r."startedAt" END,
      "finishedAt" = CASE WHEN ("runSet"->>''ended'')::boolean THEN at ELSE r."finishedAt" END,
      output = CASE WHEN ("runSet"->>''ended'')::boolean THEN "runSet"->''output'' ELSE r.output END,
      error = CASE WHEN ("runSet"->>''ended'')::boolean THEN NULLIF("runSet"->''error'', ''null''::jsonb) ELSE r.error END
    WHERE r.id = "runId"\073
  END IF\073
  RETURN jsonb_build_object(''found'', true, ''finishedNow'', finished_now, ''applied'', true,
    ''projectId'', locked."projectId", ''parentStepRunId'', locked."parentStepRunId")\073
END
';
