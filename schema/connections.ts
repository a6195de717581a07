import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import { resolveCursorConnection, type DefaultConnectionArguments, type ResolveCursorConnectionArgs } from "@pothos/plugin-relay";

/** One page's read: rows after or before `cursor` (a row id, itself left out), `take` of them, newest-first order flipped when `inverted`. */
export type PageQuery = { cursor: { id: string } | undefined; skip: number; take: number; inverted: boolean };

/**
 * A Relay connection over rows with unique ids, ordered by the reader: `first`/`after` go forward, `last`/`before`
 * go back, at most `maxSize` a page. `count` runs only when the client asks for `totalCount`, with the same filters.
 */
export async function rowConnection<Row extends { id: string }>(
  args: DefaultConnectionArguments,
  read: (page: PageQuery) => Promise<Row[]>,
  count: () => Promise<number>,
  { defaultSize = 20, maxSize = 100 }: { defaultSize?: number; maxSize?: number } = {},
) {
  for (const name of ["first", "last"] as const) {
    const size = args[name];
    if (size !== null && size !== undefined && (size < 0 || size > maxSize)) {
      throw new TesseraError(ErrorCode.BAD_USER_INPUT, `\`${name}\` must be 0 to ${maxSize} (got ${size}); page with \`after\`/\`before\` and the cursors in \`pageInfo\``, {
        argument: name,
        max: maxSize,
        actual: size,
      });
    }
  }
  const connection = await resolveCursorConnection(
    { args, toCursor: (row: Row) => row.id, defaultSize, maxSize },
    ({ before, after, limit, inverted }: ResolveCursorConnectionArgs) => {
      const cursor = before ?? after;
      return read({ cursor: cursor ? { id: cursor } : undefined, skip: cursor ? 1 : 0, take: limit, inverted });
    },
  );
  return { ...connection, totalCount: count };
}

/** `asc` for a forward read of an ascending list, flipped for a backward one. */
export const direction = (ascending: boolean, inverted: boolean) => ((ascending !== inverted) ? "asc" : "desc") as "asc" | "desc";
