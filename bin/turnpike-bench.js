#!/usr/bin/env node
// Entry point of the `turnpike-bench` command (the load tool); the tool itself is src/load-tool/main.ts,
// built to dist/src/load-tool/main.js, which runs on import. A checkout that was never built has no
// dist/: say so in one line rather than with a stack trace.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const entry = new URL('../dist/src/load-tool/main.js', import.meta.url);

/**
 * Whether `err` is the import of `entry` failing because that file is not there. A module missing
 * further in (a dependency, a file inside dist/) is a different problem and is reported as it is.
 */
function isNotBuilt(err) {
  const missing = /^Cannot find module '([^']+)'/.exec(err?.message ?? '')?.[1];
  return err?.code === 'ERR_MODULE_NOT_FOUND' && missing === fileURLToPath(entry);
}

try {
  await import(entry.href);
} catch (err) {
  if (!isNotBuilt(err)) throw err;
  process.stderr.write(`turnpike-bench: not built yet: run "npm run build" (or "npm ci") in ${root}\n`);
  process.exitCode = 1;
}
