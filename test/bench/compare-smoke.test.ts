/**
 * Keeps the relay comparison working: `bench:compare --smoke` starts each target (forwarder, turnpike,
 * coturn when installed), relays a few hundred packets through it and stops it, well within a minute.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

t.test('bench:compare --render re-prints a saved run (the committed baseline)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'compare-render-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'run.json');
  copyFileSync(fileURLToPath(new URL('../../bench/results/baseline-compare.json', import.meta.url)), file);
  const { stdout } = await run(process.execPath, [MAIN, '--render', file], { timeout: 30_000 });
  t.match(stdout, /^\| metric \| forwarder \| turnpike \| coturn -m 1 \|/m, 'table printed');
  t.match(
    stdout,
    /RSS growth per live allocation \(turnpike, KiB\) \| [\d.]+ \| <= 8 \|/,
    'targets evaluated',
  );
  t.match(readFileSync(join(dir, 'run.md'), 'utf8'), /relay capacity estimated from CPU per packet/);
  const record = JSON.parse(readFileSync(file, 'utf8')) as { summary: { key: string }[] };
  t.ok(
    record.summary.some((m) => m.key === 'capacity-100B×100'),
    'summary recomputed',
  );
});
