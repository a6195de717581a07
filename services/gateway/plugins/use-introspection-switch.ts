import { NoSchemaIntrospectionCustomRule } from "graphql";
import type { Plugin } from "graphql-yoga";

/**
 * Schema introspection (`__schema`, `__type`) only where GRAPHQL_INTROSPECTION=1:
 * a map of every field is an attacker's first step, and clients have the
 * printed SDL (schema/schema.graphql). GraphiQL and codegen tools that
 * introspect need it on, in development. `__typename` always works.
 */
export function useIntrospectionSwitch(enabled: boolean): Plugin {
  if (enabled) return {};
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}
