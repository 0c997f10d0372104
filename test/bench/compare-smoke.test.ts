/**
 * Keeps the relay comparison working: `bench:compare --smoke` starts each target (forwarder, turnpike with
 * its native data plane on one and two relay threads and with its JS one, coturn with one relay thread,
 * two and its default when installed), relays a few hundred packets through it and stops it, within
 * two minutes (about 20 s here).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../dist/bench/compare/main.js', import.meta.url));
/** Whether the daemon can run its native data plane here (the targets that need it are skipped otherwise). */
const nativeBuilt =
  process.platform === 'linux' &&
  existsSync(
    process.env['TP_NATIVE_ADDON'] ??
      fileURLToPath(new URL('../../build/Release/turnpike_dataplane.node', import.meta.url)),
  );

t.test('bench:compare --smoke relays through every target', async (t) => {
  const started = Date.now();
  const { stdout } = await run(process.execPath, [MAIN, '--smoke'], { timeout: 120_000 });
  t.ok(Date.now() - started < 120_000, 'bounded');
  t.match(stdout, /^forwarder\s+relayed [1-9]\d* of \d+ packets/m, 'forwarder relayed');
  t.match(
    stdout,
    /^turnpike-js\s+relayed [1-9]\d* of \d+ packets.*metrics agree, js data plane$/m,
    'turnpike on its JS data plane relayed, metrics agree',
  );
  if (nativeBuilt) {
    t.match(
      stdout,
      /^turnpike\s+relayed [1-9]\d* of \d+ packets.*metrics agree, native data plane, 1 relay thread$/m,
      'turnpike on its native data plane, one relay thread: relayed, metrics agree',
    );
    t.match(
      stdout,
      /^turnpike-2t\s+relayed [1-9]\d* of \d+ packets.*metrics agree, native data plane, 2 relay threads$/m,
      'turnpike-2t on two relay threads',
    );
  } else {
    t.match(
      stdout,
      /^turnpike\s+skipped: native addon not built/m,
      'native targets skipped without the addon',
    );
    t.match(stdout, /^turnpike-2t\s+skipped: native addon not built/m);
  }
  if (process.env['CI']) {
    t.match(stdout, /^coturn\s+relayed [1-9]\d* of \d+ packets/m, 'coturn relayed (CI installs it)');
    t.match(stdout, /^coturn-2t\s+relayed [1-9]\d* of \d+ packets/m, 'coturn with two relay threads');
  }
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
    /RSS growth per live allocation \(turnpike, KiB\) \| issue 13 \| [\d.]+ \| <= 8 \|/,
    'targets evaluated',
  );
  t.match(readFileSync(join(dir, 'run.md'), 'utf8'), /relay capacity estimated from CPU per packet/);
  t.match(stdout, /ChannelData c2p, 1200 B, 1000 alloc/, 'its rate-allocs rows are shown');
  t.match(stdout, /^ {4}(PASS|FAIL|n\/a ) {2}Binding requests\/s: turnpike\/coturn/m, "issue 13's lines");
  const record = JSON.parse(readFileSync(file, 'utf8')) as { summary: { key: string }[] };
  t.ok(
    record.summary.some((m) => m.key === 'capacity-100B×100'),
    'summary recomputed',
  );
});
