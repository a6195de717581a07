import { GraphQLError } from "graphql";
import type { Plugin } from "graphql-yoga";

/** Codes of requests refused before execution; clients branch on them like on TesseraError codes. */
export const RequestErrorCode = {
  /** Over a graphql-armor limit: depth, aliases, cost, directives or tokens. */
  QUERY_TOO_COMPLEX: "QUERY_TOO_COMPLEX",
  GRAPHQL_PARSE_FAILED: "GRAPHQL_PARSE_FAILED",
  GRAPHQL_VALIDATION_FAILED: "GRAPHQL_VALIDATION_FAILED",
} as const;

// graphql-armor's messages ("Syntax Error: Query depth limit of 12 exceeded, found 13.") are its only marker.
const ARMOR_LIMIT = /\b(depth|aliases|cost|directives|token) limit of \d+ exceeded/i;

/**
 * Gives parse and validation rejections an `extensions.code`. graphql-armor
 * throws plain GraphQLErrors from inside validation and parsing; without this
 * they reach the client with a message only.
 */
export function useValidationErrorCodes(): Plugin {
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, options) => {
        try {
          return parseFn(source, options);
        } catch (error) {
          if (error instanceof GraphQLError) throw withCode(error, RequestErrorCode.GRAPHQL_PARSE_FAILED);
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
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
      });
      return ({ result, setResult }) => {
        if (result.some((error) => !error.extensions?.code)) {
          setResult(result.map((error) => withCode(error, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)));
        }
      };
    },
  };
}

function withCode(error: GraphQLError, fallback: string): GraphQLError {
  if (error.extensions?.code) return error;
  const code = ARMOR_LIMIT.test(error.message) ? RequestErrorCode.QUERY_TOO_COMPLEX : fallback;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}
