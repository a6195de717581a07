-- The start of a run as one statement (issue #20): the quota check of the project, the Run row and its StepRun rows commit
-- together or not at all. Before, a Prisma interactive transaction held the advisory lock while the model API
-- inserted the run and then its steps, and when that transaction expired (5 s) its rollback could land between the two
-- inserts, and the INSERT of the steps then ran outside it: "Foreign key constraint violated on StepRun_runId_fkey".
--
-- run:   {id, projectId, workflowVersionId, status, input, output, error, parentStepRunId, started, finished}
-- steps: [{id, stepId, key, status, input, output, error, started, finished}], top-level rows only
-- maxOpen: QUOTA_CONCURRENT_RUNS for a top-level run (checked under the advisory lock of the project), NULL for a child run
-- Returns the Run row as JSON, or {"refusedOpen": n} when the project already has n >= maxOpen runs open.
-- Prisma (its WebAssembly schema engine) splits a migration at every semicolon, even inside quotes, so the body is
-- an escaped string with each semicolon written as \073.
-- Each statement of a VOLATILE PL/pgSQL function reads with a fresh snapshot, so the count sees every run committed
-- by whoever held the lock before.
CREATE FUNCTION tessera_start_run(run jsonb, steps jsonb, "maxOpen" integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS E'
DECLARE
  open_runs integer\073
  created "Run"\073
  at timestamp(3) := now() AT TIME ZONE ''UTC''\073
BEGIN
  IF "maxOpen" IS NOT NULL THEN
    -- A start waits this long for other starts of the project, then it fails (55P03) and the caller says retry.
    PERFORM set_config(''lock_timeout'', ''10s'', true)\073
    PERFORM pg_advisory_xact_lock(hashtextextended(''runs:'' || (run->>''projectId''), 0))\073
    SELECT count(*) INTO open_runs FROM "Run"
      WHERE "projectId" = run->>''projectId'' AND "parentStepRunId" IS NULL AND status IN (''QUEUED'', ''RUNNING'')\073
    IF open_runs >= "maxOpen" THEN
      RETURN jsonb_build_object(''refusedOpen'', open_runs)\073
    END IF\073
  END IF\073
  INSERT INTO "Run" (id, "projectId", "workflowVersionId", status, input, output, error, "parentStepRunId", "createdAt", "startedAt", "finishedAt")
  VALUES (
    run->>''id'', run->>''projectId'', run->>''workflowVersionId'', (run->>''status'')::"RunStatus", COALESCE(run->''input'', ''{}''::jsonb),
    NULLIF(run->''output'', ''null''::jsonb), NULLIF(run->''error'', ''null''::jsonb), run->>''parentStepRunId'', at,
    CASE WHEN (run->>''started'')::boolean THEN at END, CASE WHEN (run->>''finished'')::boolean THEN at END)
  RETURNING * INTO created\073
  INSERT INTO "StepRun" (id, "runId", "stepId", key, status, input, output, error, attempts, "createdAt", "startedAt", "finishedAt")
  SELECT s->>''id'', created.id, s->>''stepId'', s->>''key'', (s->>''status'')::"StepStatus", NULLIF(s->''input'', ''null''::jsonb),
    NULLIF(s->''output'', ''null''::jsonb), NULLIF(s->''error'', ''null''::jsonb), CASE WHEN (s->>''started'')::boolean THEN 1 ELSE 0 END, at,
    CASE WHEN (s->>''started'')::boolean THEN at END, CASE WHEN (s->>''finished'')::boolean THEN at END
  FROM jsonb_array_elements(steps) AS s\073
  RETURN to_jsonb(created)\073
END
';
