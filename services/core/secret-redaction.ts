/**
 * Takes secrets out of text before it is shown or logged: passwords in URLs,
 * `Bearer`/`Basic` credentials, keys in query strings, values under
 * secret-named keys, and the values of the secrets this process was given
 * (remembered from its environment at start). Errors (`TesseraError`) and log
 * lines pass through here, so neither a response nor a log holds one.
 */

export const REDACTED = "[redacted]";

/** `scheme://user:password@` (the password up to the last `@` of the authority). */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#:@]*):[^\s/?#]*@/gi;
/** A credential after `Bearer`/`Basic`: 8+ token characters with a digit or symbol in them, so "Basic information" stays. */
const AUTH_SCHEME = /\b(Bearer|Basic|bearer|basic)(\s+)(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}/g;
const QUERY_SECRET = /([?&;](?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|key|password|passwd|secret|signature|sig|x-amz-signature)=)[^&#\s"']+/gi;
/** `OPENAI_API_KEY=sk-...` as an environment line or a command would print it. */
const ASSIGNED_SECRET = /\b([A-Z0-9_]*(?:API_KEY|SECRET|PASSWORD|TOKEN)=["']?)[^\s"',;]+/g;

/** Keys whose values are secrets wherever they appear in a logged or returned object. */
const SECRET_KEY = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?key|apikey|password|passwd|secret|client[-_]?secret|(access|refresh|id|auth)[-_]?token|[a-z0-9_]*(_api_key|_secret|_password|_token))$/i;

/** Environment variables that hold secrets; URL-valued ones are scrubbed of their passwords instead. */
const SECRET_ENV = /(^|_)(API_KEY|SECRET|PASSWORD|TOKEN|KEY)$/;
const MIN_SECRET_LENGTH = 8;

const known = new Set<string>();

/** Remembers the secret values of an environment (API keys, passwords in URLs) so that text holding them is redacted. */
export function rememberSecretsOf(env: Record<string, string | undefined>) {
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    if (SECRET_ENV.test(name) && value.length >= MIN_SECRET_LENGTH) known.add(value);
    const password = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*?:([^/?#@]*)@/i.exec(value)?.[1];
    if (password && password.length >= MIN_SECRET_LENGTH) {
      known.add(password);
      try {
        known.add(decodeURIComponent(password));
      } catch {
        // not percent-encoded
      }
    }
  }
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** The text with every secret it holds replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  let result = text
    .replace(URL_PASSWORD, `$1:${REDACTED}@`)
    .replace(AUTH_SCHEME, `$1$2${REDACTED}`)
    .replace(QUERY_SECRET, `$1${REDACTED}`)
    .replace(ASSIGNED_SECRET, `$1${REDACTED}`);
  for (const secret of known) if (result.includes(secret)) result = result.replaceAll(secret, REDACTED);
  return result;
}

/**
 * A copy of plain JSON-like data with every string redacted and every value
 * under a secret-named key replaced. Other objects (errors, dates, buffers)
 * are left to their own serializers.
 */
export function redactSecretsIn<T>(value: T, depth = 0): T {
  if (typeof value === "string") return redactSecrets(value) as T;
  if (depth > 12 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => redactSecretsIn(item, depth + 1)) as T;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, entry]) => [key, isSecretKey(key) && entry != null ? REDACTED : redactSecretsIn(entry, depth + 1)]),
  ) as T;
}
