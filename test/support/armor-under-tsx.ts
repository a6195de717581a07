import { startTestApp } from "./test-app.ts";

/**
 * Run by tsx (as `npm start` runs the gateway), where graphql-armor's CommonJS require("graphql") loads another
 * copy of graphql than the gateway's import: prints one JSON line per answer for api-honest-errors.test.ts.
 */
const t = await startTestApp();
try {
  const { key } = await t.createProject();
  for (const query of ["{ assets(first: 400) { edges { node { id } } } }", "{ healht { status } }"]) {
    console.log(JSON.stringify(await t.graphql(query, {}, key)));
  }
} finally {
  await t.close();
}
