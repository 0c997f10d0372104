/**
 * `npm start` runs the daemon through `sh -c`. Debian's sh (dash) does not pass a SIGTERM on to its
 * child, so with `"start": "node bin/turnpike.js"` stopping npm left the daemon running. The script
 * `exec`s node, so the daemon is npm's own child and gets the signal npm forwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePort } from '../fixtures/helpers/daemon.js';
import { sleep } from '../fixtures/helpers/turn-client.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Whether `pid` is a live process (a zombie, exited but not yet reaped, is not). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resolves with the first JSON log line whose msg is `msg`, or rejects after `ms`. */
function logLine(proc: ChildProcess, msg: string, ms: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no "${msg}" line within ${ms} ms:\n${output}`)), ms);
    proc.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    proc.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
      buffered += d.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith('{')) continue; // npm's "> turnpike@… start" banner
        const record = JSON.parse(line) as Record<string, unknown>;
        if (record['msg'] === msg) {
          clearTimeout(timer);
          resolve(record);
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`npm exited (${code}) first:\n${output}`));
    });
  });
}

t.test('SIGTERM to npm start stops the daemon', async (t) => {
  const port = await freePort();
  // --ignore-scripts skips prestart (the build `npm test` has already done) and, since npm 7,
  // still runs the start script itself.
  const npm = spawn(
    'npm',
    ['start', '--ignore-scripts', '--', '--listening-ip', '127.0.0.1', '--listening-port', String(port)],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, npm_config_update_notifier: 'false' },
    },
  );
  const npmExited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
  let daemonPid: number | undefined;
  t.teardown(() => {
    if (daemonPid !== undefined && isRunning(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
  });

  const started = await logLine(npm, 'turnpike started', 60_000);
  const pid = started['pid'];
  if (typeof pid !== 'number') throw new Error(`no pid in ${JSON.stringify(started)}`);
  daemonPid = pid;
  t.not(pid, npm.pid, 'the daemon is its own process');
  t.ok(isRunning(pid), 'the daemon runs');

  t.ok(npm.kill('SIGTERM'), 'SIGTERM sent to npm');
  const deadline = Date.now() + 5000;
  while (isRunning(pid) && Date.now() < deadline) await sleep(50);
  t.notOk(isRunning(pid), 'the daemon is gone within 5 s');
  let timer: NodeJS.Timeout | undefined;
  const npmGone = await Promise.race([
    npmExited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 5000);
    }),
  ]);
  clearTimeout(timer);
  t.ok(npmGone, 'npm exits too');
});
