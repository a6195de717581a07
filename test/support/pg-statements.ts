import pg from "pg";

export type SentStatement = { text?: string; name?: string; rowMode?: string; values?: unknown[] };

/**
 * The statements node-postgres is asked to run (in this process, by any client) while `work` runs, as they were
 * passed to `Client.query`: their text, their values and, for a prepared statement, its name. Prisma's adapter sends
 * its own with rowMode "array".
 */
export async function statementsOf(work: () => Promise<unknown>): Promise<SentStatement[]> {
  const query = pg.Client.prototype.query;
  const sent: SentStatement[] = [];
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const [config, values] = args;
    const statement: SentStatement = typeof config === "string" ? { text: config } : { ...(config as SentStatement) };
    if (Array.isArray(values)) statement.values = values; // query(text, values)
    sent.push(statement);
    return (query as (...all: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  try {
    await work();
  } finally {
    pg.Client.prototype.query = query;
  }
  return sent;
}
