import { stepDependencies } from "../dsl/validate-workflow.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";

/** Versions never change, so what is derived from one is computed once per process. */
const dependenciesByVersion = new Map<string, Map<string, Set<string>>>();

export function dependenciesOf(versionId: string, definition: WorkflowDefinition) {
  let dependencies = dependenciesByVersion.get(versionId);
  if (!dependencies) {
    dependencies = stepDependencies(definition);
    if (dependenciesByVersion.size > 1000) dependenciesByVersion.clear();
    dependenciesByVersion.set(versionId, dependencies);
  }
  return dependencies;
}
