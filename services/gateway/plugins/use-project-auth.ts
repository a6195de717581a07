import { Kind, type DocumentNode, type OperationDefinitionNode } from "graphql";
import type { Plugin } from "graphql-yoga";
import { missingApiKeyError, type GatewayContext } from "../context.ts";
import { toGraphQLError } from "../graphql-errors.ts";

/** Root fields anyone may ask for; everything else needs an API key. */
const PUBLIC_ROOT_FIELDS = new Set(["health", "__typename", "__schema", "__type"]);

function needsProject(document: DocumentNode, operationName?: string | null): boolean {
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  const operation = operationName ? operations.find((op) => op.name?.value === operationName) : operations[0];
  if (!operation) return true;
  // Fragments at the root are treated as private: cheaper than resolving them, and never wrong.
  return operation.selectionSet.selections.some(
    (selection) => selection.kind !== Kind.FIELD || !PUBLIC_ROOT_FIELDS.has(selection.name.value),
  );
}

// A result set here skips yoga's error masking, so it is already in its wire form.
function unauthenticated() {
  return {
    errors: [toGraphQLError(missingApiKeyError())],
  };
}

/**
 * Refuses every operation but `health` without a valid key, before any
 * resolver runs. The schema's `project` scope (scope-auth, schema/builder.ts)
 * guards each field as well; this gate refuses the whole operation up front,
 * so a keyless request runs no resolver and gets no partial data.
 */
export function useProjectAuth(): Plugin<GatewayContext> {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const context = args.contextValue as GatewayContext;
      if (!context.project && needsProject(args.document, args.operationName)) setResultAndStopExecution(unauthenticated());
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const context = args.contextValue as GatewayContext;
      if (!context.project && needsProject(args.document, args.operationName)) setResultAndStopExecution(unauthenticated());
    },
  };
}
