-- Several items of one map that ended in the same turn of a worker, in one statement (issue #20, group commit): one
-- lock of the map row, one commit (one WAL flush) for all of them, where one statement per item held the map row's
-- lock across a flush each. Same rules as tessera_finish_map_item (20261205113000): under the map row's lock, each
-- item's SUCCEEDED while it is still RUNNING, then the count of the map's items and the next PENDING ones marked QUEUED
-- within the map's concurrency. As there, each body is an escaped string with each semicolon written as \073.
-- items: [{"id", "output"}]. Returns {"finished": [ids whose end applied], "done": the map needs its run advanced,
-- "queued": [{id, stepId, key, parentId, input}] to enqueue}.
CREATE FUNCTION tessera_finish_map_items("runId" text, "mapId" text, items jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS E'
#variable_conflict use_variable
DECLARE
  map_status text\073
  concurrency integer\073
  finished jsonb\073
  active integer\073
  pending integer\073
  broken integer\073
  room integer\073
  queued jsonb\073
BEGIN
  SELECT s.status::text, (s.input->>''concurrency'')::int INTO map_status, concurrency
    FROM "StepRun" s WHERE s.id = "mapId" AND s."runId" = "runId" FOR UPDATE\073
  WITH ended AS (
    UPDATE "StepRun" s SET status = ''SUCCEEDED'', output = COALESCE(i.output, ''null''::jsonb), "finishedAt" = now() AT TIME ZONE ''UTC''
    FROM jsonb_to_recordset(items) AS i(id text, output jsonb)
    WHERE s.id = i.id AND s."runId" = tessera_finish_map_items."runId" AND s.status = ''RUNNING''
    RETURNING s.id)
  SELECT COALESCE(jsonb_agg(ended.id), ''[]''::jsonb) INTO finished FROM ended\073
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
