/** Keeps the Binding benchmark working: a short smoke run (no thresholds) against every target. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../dist/bench/binding/main.js', import.meta.url));
/** Whether the daemon can run its native data plane here (the targets that need it are skipped otherwise). */
const nativeBuilt =
  process.platform === 'linux' &&
  existsSync(
    process.env['TP_NATIVE_ADDON'] ??
      fileURLToPath(new URL('../../build/Release/turnpike_dataplane.node', import.meta.url)),
  );

t.test('bench:binding --smoke measures echo, turnpike (native and JS data planes) and coturn', async (t) => {
  const { stdout } = await run(process.execPath, [MAIN, '--smoke'], { timeout: 120_000 });
  t.match(stdout, /^echo\s+[\d,]+/m, 'echo ceiling measured');
  t.match(stdout, /^turnpike-js\s+[\d,]+/m, 'turnpike on its JS data plane measured');
  if (nativeBuilt) {
    t.match(stdout, /^turnpike\s+[\d,]+/m, 'turnpike (native, one relay thread) measured');
    t.match(stdout, /^turnpike: .*--data-plane native --relay-threads 1$/m, 'described as such');
    t.match(stdout, /turnpike\/echo\s+[\d.]+/, 'ratio printed');
    t.match(stdout, /turnpike\/turnpike-js\s+[\d.]+/, 'native against JS printed');
  } else {
    t.match(stdout, /^turnpike\s+skipped/m, 'turnpike (native) skipped without the addon');
    t.match(stdout, /turnpike-js\/echo\s+[\d.]+/, 'ratio printed');
  }
  if (process.env['CI']) t.match(stdout, /^coturn\s+[\d,]+/m, 'coturn measured (CI installs it)');
});
