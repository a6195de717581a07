import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Plugin } from "graphql-yoga";
import { logContext } from "../core/logger.ts";
import { graphqlErrors, graphqlOperationDuration, operationLabel } from "./metrics.ts";
import { contentCaptured, tracer } from "./tracing.ts";

type OperationDefinition = { kind: string; operation?: string; name?: { value: string } };
type Document = { definitions: readonly OperationDefinition[]; loc?: { source: { body: string } } };
type ResultError = { extensions?: Record<string, unknown>; originalError?: unknown };

/** The operation a request executes: the named one, or the only one. */
function operationOf(document: Document, operationName: string | null | undefined) {
  const operations = document.definitions.filter((definition) => definition.kind === "OperationDefinition");
  const chosen = operationName ? operations.find((operation) => operation.name?.value === operationName) : operations.length === 1 ? operations[0] : undefined;
  return { name: chosen?.name?.value ?? operationName ?? undefined, type: chosen?.operation ?? "unknown" };
}

/** The code a client sees for an error (a TesseraError's, a validation code), or INTERNAL_SERVER_ERROR. */
export function errorCode(error: ResultError): string {
  const code = error.extensions?.code ?? (error.originalError as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^[A-Z_]{1,64}$/.test(code) ? code : "INTERNAL_SERVER_ERROR";
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

/**
 * GraphQL operations as metrics and spans: each execution is timed into
 * tessera_graphql_operation_duration_seconds{operation,type}, each error of a
 * result (validation ones too) counted in tessera_graphql_errors_total{operation,code},
 * and, with tracing on, each execution is a SERVER span `<type> <name>` that
 * the resolvers run inside, so the jobs they queue continue its trace. The
 * document goes into the span only with OTEL_CAPTURE_CONTENT=1; variables never.
 */
export function useOperationTelemetry(projectOf?: (contextValue: unknown) => string | undefined): Plugin {
  return {
    onValidate({ params, context: requestContext }) {
      return ({ result }) => {
        if (!result.length) return;
        // Yoga puts the request's GraphQL parameters on its context.
        const operationName = (requestContext as { params?: { operationName?: string | null } }).params?.operationName;
        const { name } = operationOf(params.documentAST as unknown as Document, operationName);
        const operation = operationLabel(name);
        for (const error of result) graphqlErrors.inc({ operation, code: errorCode(error as ResultError) });
      };
    },
    onExecute({ args, setExecuteFn, executeFn }) {
      const { name, type } = operationOf(args.document as unknown as Document, args.operationName);
      const operation = operationLabel(name);
      const started = performance.now();
      const store = logContext.getStore();
      if (store) {
        store.operation = name ?? "anonymous";
        const projectId = projectOf?.(args.contextValue);
        if (projectId) store.projectId = projectId;
      }
      const span = tracer.startSpan(`${type} ${name ?? "anonymous"}`, {
        kind: SpanKind.SERVER,
        attributes: { "graphql.operation.name": name ?? "anonymous", "graphql.operation.type": type },
      });
      if (contentCaptured()) {
        const body = (args.document as unknown as Document).loc?.source.body;
        if (body) span.setAttribute("graphql.document", body);
      }
      const spanContext = trace.setSpan(context.active(), span);
      setExecuteFn((executeArgs) => context.with(spanContext, () => executeFn(executeArgs)));
      return {
        onExecuteDone({ result }) {
          graphqlOperationDuration.observe({ operation, type }, (performance.now() - started) / 1000);
          if (!isAsyncIterable(result)) {
            const errors = (result.errors ?? []) as ResultError[];
            for (const error of errors) graphqlErrors.inc({ operation, code: errorCode(error) });
            if (errors.length) {
              span.setStatus({ code: SpanStatusCode.ERROR, message: errors.map(errorCode).join(",") });
              span.setAttribute("graphql.error.codes", errors.map(errorCode));
            }
          }
          span.end();
        },
      };
    },
  };
}
