/**
 * Keeps the relay comparison working: `bench:compare --smoke` starts each target (forwarder, turnpike,
 * coturn when installed), relays a few hundred packets through it and stops it, well within a minute.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../dist/bench/compare/main.js', import.meta.url));

t.test('bench:compare --smoke relays through every target', async (t) => {
  const started = Date.now();
  const { stdout } = await run(process.execPath, [MAIN, '--smoke'], { timeout: 60_000 });
  t.ok(Date.now() - started < 60_000, 'bounded');
  t.match(stdout, /^forwarder\s+relayed [1-9]\d* of \d+ packets/m, 'forwarder relayed');
  t.match(
    stdout,
    /^turnpike\s+relayed [1-9]\d* of \d+ packets.*metrics agree/m,
    'turnpike relayed, metrics agree',
  );
  if (process.env['CI'])
    t.match(stdout, /^coturn\s+relayed [1-9]\d* of \d+ packets/m, 'coturn relayed (CI installs it)');
  t.notMatch(stdout, /FAILED/);
});
