import type { AppContext } from "../../services/app/app-context.ts";
import { stepDependencies } from "../dsl/validate-workflow.ts";
import type { ExpressionSite } from "../dsl/expression.ts";
import { expressionPosition } from "../dsl/workflow-source.ts";
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

const definitionsByVersion = new Map<string, WorkflowDefinition>();

/** A version's definition, read from PostgreSQL once per process. */
export async function definitionOf(app: AppContext, versionId: string): Promise<WorkflowDefinition> {
  let definition = definitionsByVersion.get(versionId);
  if (!definition) {
    const version = await app.db.workflowVersion.findUniqueOrThrow({ where: { id: versionId }, select: { definition: true } });
    definition = version.definition as unknown as WorkflowDefinition;
    if (definitionsByVersion.size > 1000) definitionsByVersion.clear();
    definitionsByVersion.set(versionId, definition);
  }
  return definition;
}

/** Finds an expression's line:col in a version's stored source; the source is read only when an error needs it. */
export function expressionLocator(app: AppContext, versionId: string): NonNullable<ExpressionSite["locate"]> {
  return async (path, body) => {
    const version = await app.db.workflowVersion.findUnique({ where: { id: versionId }, select: { source: true } });
    return version ? expressionPosition(version.source, path, body) : undefined;
  };
}
