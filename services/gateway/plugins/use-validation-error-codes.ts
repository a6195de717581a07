import { GraphQLError } from "graphql";
import type { Plugin } from "graphql-yoga";

/** Codes of requests refused before execution; clients branch on them like on TesseraError codes. */
export const RequestErrorCode = {
  /** Over a graphql-armor limit: depth, aliases, cost, directives or tokens. */
  QUERY_TOO_COMPLEX: "QUERY_TOO_COMPLEX",
  GRAPHQL_PARSE_FAILED: "GRAPHQL_PARSE_FAILED",
  GRAPHQL_VALIDATION_FAILED: "GRAPHQL_VALIDATION_FAILED",
} as const;

const SUGGESTION = /Did you mean ".+"\?/;

// graphql-armor's messages ("Syntax Error: Query depth limit of 12 exceeded, found 13.") are its only marker.
const ARMOR_LIMIT = /\b(depth|aliases|cost|directives|token) limit of (\d+) exceeded(?:, found (\d+))?/i;

/** What each limit is called, the setting that raises it, and what to do instead. */
const LIMITS: Record<string, { what: string; variable?: string; advice: string }> = {
  depth: { what: "depth (fields nested in fields)", variable: "GRAPHQL_MAX_DEPTH", advice: "nest fewer selections, or ask in two requests" },
  aliases: { what: "number of aliases", variable: "GRAPHQL_MAX_ALIASES", advice: "use fewer aliases, or ask in several requests" },
  cost: { what: "cost (every field selected, weighted by how deep it sits)", variable: "GRAPHQL_MAX_COST", advice: "select fewer fields or smaller pages, or ask in several requests" },
  directives: { what: "number of directives", advice: "use fewer directives" },
  token: { what: "length in tokens", advice: "send a shorter document" },
};

/**
 * graphql-armor says "Syntax Error: Query Cost limit of 5000 exceeded, found 6200." for a valid query; this says
 * which limit, by how much, and what to do, with the figures in `extensions.limit`.
 */
export function describeArmorLimit(message: string): { message: string; limit: Record<string, unknown> } | undefined {
  const match = ARMOR_LIMIT.exec(message);
  if (!match) return undefined;
  const kind = match[1]!.toLowerCase();
  const max = Number(match[2]);
  const found = match[3] === undefined ? undefined : Number(match[3]);
  const { what, variable, advice } = LIMITS[kind]!;
  const by = found === undefined ? `more than ${max}` : `${found}, ${found - max} over the limit of ${max}`;
  return {
    message: `The query is too complex: its ${what} is ${by}${variable ? ` (${variable})` : ""}; ${advice}.`,
    limit: { kind: kind === "token" ? "tokens" : kind, max, ...(found === undefined ? {} : { actual: found, over: found - max }), ...(variable ? { variable } : {}) },
  };
}

/**
 * Gives parse and validation rejections an `extensions.code`. graphql-armor
 * throws plain GraphQLErrors from inside validation and parsing; without this
 * they reach the client with a message only.
 */
/** Where a hidden suggestion stood: the client learns where the names are instead of "[Suggestion hidden]". */
export const HIDDEN_SUGGESTION = "(the schema's fields are listed in schema/schema.graphql; suggestions are shown when GRAPHQL_INTROSPECTION=1)";

/**
 * `showSuggestions` false: graphql's "Did you mean ...?" (real field names) is replaced by HIDDEN_SUGGESTION, as
 * where introspection is off the names are not to be probed for. Done here, not by graphql-armor's
 * blockFieldSuggestion, whose `instanceof GraphQLError` misses errors under tsx (see isGraphQLError).
 */
export function useValidationErrorCodes(options: { showSuggestions?: boolean } = {}): Plugin {
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, options) => {
        try {
          return parseFn(source, options);
        } catch (error) {
          if (isGraphQLError(error)) throw withCode(error, RequestErrorCode.GRAPHQL_PARSE_FAILED);
          throw error;
        }
      });
    },
    onValidate({ validateFn, setValidationFn }) {
      setValidationFn((...args) => {
        try {
          return validateFn(...args);
        } catch (error) {
          // armor rules throw instead of reporting; turn that into an ordinary validation result.
          if (isGraphQLError(error)) return [withCode(error, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)];
          throw error;
        }
      });
      return ({ result, setResult }) => {
        const hide = !options.showSuggestions && result.some((error) => SUGGESTION.test(error.message));
        if (hide || result.some((error) => !error.extensions?.code)) {
          setResult(
            result.map((error) => {
              const coded = withCode(error, RequestErrorCode.GRAPHQL_VALIDATION_FAILED);
              if (!hide || !SUGGESTION.test(coded.message)) return coded;
              return new GraphQLError(coded.message.replace(SUGGESTION, HIDDEN_SUGGESTION), {
                nodes: coded.nodes,
                source: coded.source,
                positions: coded.positions,
                path: coded.path,
                extensions: coded.extensions,
              });
            }),
          );
        }
      };
    },
  };
}

/**
 * Under tsx (`npm start`), graphql-armor's CommonJS `require("graphql")` loads another copy of graphql than the
 * gateway's `import`, so its errors fail `instanceof GraphQLError` and would reach the client as "Unexpected error.";
 * they are recognised by their tag instead, and rebuilt as this copy's GraphQLError by withCode.
 */
function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof GraphQLError || Object.prototype.toString.call(error) === "[object GraphQLError]";
}

function withCode(error: GraphQLError, fallback: string): GraphQLError {
  if (error.extensions?.code) return error;
  const limit = describeArmorLimit(error.message);
  return new GraphQLError(limit ? limit.message : error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, ...(limit ? { code: RequestErrorCode.QUERY_TOO_COMPLEX, limit: limit.limit } : { code: fallback }) },
  });
}
