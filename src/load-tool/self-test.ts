/**
 * `--self-test`: the tool's own ceiling. It starts the bare forwarder (forwarder.ts) as a child process
 * on 127.0.0.1, pins it and the tool to separate CPUs when taskset allows, and runs the configured
 * search against it with the same allocations, size, path, direction and workers. A server measured
 * with those settings near this rate is measured near the tool's limit, not its own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from './child.js';
import { allowedCpus, pinProcess, tasksetWorks } from './proc.js';
import type { HostPort } from './types.js';

export interface ForwarderChild {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly address: HostPort;
  /** How the forwarder and the tool were pinned, for the report. */
  readonly pinning: string;
  stop(): Promise<void>;
}

function mainScript(): string {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`./main.${ext}`, import.meta.url));
}

/** Pins the forwarder to the last allowed CPU and this process (all its threads) to the others. */
function pin(pid: number): string {
  const cpus = allowedCpus();
  if (cpus === undefined || cpus.length < 2) return 'not pinned (fewer than 2 CPUs allowed)';
  const last = cpus[cpus.length - 1]!;
  if (!tasksetWorks(last)) return 'not pinned (taskset unavailable)';
  const rest = cpus.slice(0, -1);
  if (!pinProcess(pid, [last])) return 'not pinned (taskset failed)';
  const self = pinProcess(process.pid, rest);
  return `forwarder on CPU ${last}` + (self ? `, tool on CPU ${rest.join(',')}` : ', tool not pinned');
}

/** Starts `main.js forwarder --listen 127.0.0.1:0` and waits (≤ 10 s) for its "listening" line. */
export async function startForwarder(shouldPin: boolean): Promise<ForwarderChild> {
  const child = spawn(
    process.execPath,
    // Large buffers (as coturn's listener has), so the losses the self-test finds are the tool's.
    [...process.execArgv, mainScript(), 'forwarder', '--listen', '127.0.0.1:0', '--sock-buf', '4194304'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = (): Promise<void> => stopChild(child, exited, 2000);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  try {
    const address = await new Promise<HostPort>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('forwarder did not start within 10 s')), 10_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`forwarder exited: ${stderr.trim()}`));
      });
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening (\S+):(\d+)\n/.exec(out);
        if (m === null) return;
        clearTimeout(timer);
        resolve({ address: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
      });
    });
    if (pid === undefined) throw new Error('forwarder has no PID');
    return { process: child, pid, address, pinning: shouldPin ? pin(pid) : 'not pinned (--pin off)', stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
