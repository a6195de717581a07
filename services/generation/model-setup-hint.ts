/**
 * How an operator configures a model alias that is missing: the words shared
 * by publish warnings and the MODEL_NOT_FOUND error a run fails with.
 */
export function aliasSetupHint(alias: string): string {
  const variable = `MODEL_ALIAS_${alias.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}`;
  return `set ${variable}=<provider>:<model> (a provider from PROVIDERS_FILE, \`openai\` with OPENAI_API_KEY, or PROVIDER_<NAME>_BASE_URL), or add "${alias}" under \`models:\` in PROVIDERS_FILE`;
}
