/** Keeps the Binding benchmark working: a short smoke run (no thresholds) against every target. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../dist/bench/binding/main.js', import.meta.url));

t.test('bench:binding --smoke measures echo, turnpike and coturn', async (t) => {
  const { stdout } = await run(process.execPath, [MAIN, '--smoke'], { timeout: 120_000 });
  t.match(stdout, /^echo\s+[\d,]+/m, 'echo ceiling measured');
  t.match(stdout, /^turnpike\s+[\d,]+/m, 'turnpike measured');
  if (process.env['CI']) t.match(stdout, /^coturn\s+[\d,]+/m, 'coturn measured (CI installs it)');
  t.match(stdout, /turnpike\/echo\s+[\d.]+/, 'ratio printed');
});
