/**
 * Child processes of the benchmark: spawning (optionally pinned to a CPU with `taskset`), a registry of the
 * live ones so they can be stopped by PID on errors and signals, free loopback ports, and per-process CPU
 * time from /proc. The benchmark only ever signals processes it spawned itself.
 */
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';

const OUTPUT_TAIL_BYTES = 4096;

/** How a child ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A spawned child with the tail of its output and a promise that settles when it exits. */
export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly name: string;
  readonly exited: Promise<ExitStatus>;
  /** Last few KiB of stdout and stderr together (only when they were piped). */
  output(): string;
}

/** Tracks every child the benchmark started, so each can be stopped by its own PID. */
export class ChildRegistry {
  readonly #live = new Set<Child>();

  /**
   * Spawns `command args`, prefixed by `taskset -c <cpu>` when `cpu` is given (taskset execs the command,
   * so the PID stays the command's own). Resolves once the process exists, rejects if it cannot start.
   */
  start(
    name: string,
    command: string,
    args: readonly string[],
    cpu: number | undefined,
    options: SpawnOptions = {},
  ): Promise<Child> {
    const [file, argv] =
      cpu === undefined ? [command, args] : ['taskset', ['-c', String(cpu), command, ...args]];
    const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let tail = '';
    const collect = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    const exited = new Promise<ExitStatus>((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
    });
    return new Promise((resolve, reject) => {
      proc.once('error', reject);
      proc.once('spawn', () => {
        proc.off('error', reject);
        // Later errors (e.g. a failed kill) surface through `exited` and stop(); don't crash on them.
        proc.on('error', () => {});
        const pid = proc.pid;
        if (pid === undefined) {
          reject(new Error(`${name}: spawned without a PID`));
          return;
        }
        const child: Child = { process: proc, pid, name, exited, output: () => tail };
        this.#live.add(child);
        void exited.then(() => this.#live.delete(child));
        resolve(child);
      });
    });
  }

  /** Sends SIGTERM to the child's PID, then SIGKILL after `graceMs`; resolves when it has exited. */
  async stop(child: Child, graceMs = 3000): Promise<ExitStatus> {
    if (!isRunning(child)) return child.exited;
    child.process.kill('SIGTERM');
    const timedOut = Symbol('timeout');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<typeof timedOut>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), graceMs);
    });
    const first = await Promise.race([child.exited, deadline]);
    clearTimeout(timer);
    if (first !== timedOut) return first;
    if (isRunning(child)) child.process.kill('SIGKILL');
    return child.exited;
  }

  /** Stops every live child (used on errors and signals). */
  async stopAll(graceMs = 2000): Promise<void> {
    await Promise.all([...this.#live].map((child) => this.stop(child, graceMs)));
  }

  /** Last-resort, synchronous: SIGKILL whatever is still running (for the process 'exit' hook). */
  killAllNow(): void {
    for (const child of this.#live) {
      if (isRunning(child)) child.process.kill('SIGKILL');
    }
  }
}

function isRunning(child: Child): boolean {
  return child.process.exitCode === null && child.process.signalCode === null;
}

/** Asks the kernel for a free UDP port on 127.0.0.1 (bind to 0, read it, close). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** The CPUs this process may run on, from /proc/self/status (e.g. "0-1,4"); undefined off Linux. */
function allowedCpus(): number[] | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1];
    if (list === undefined) return undefined;
    const cpus: number[] = [];
    for (const part of list.split(',')) {
      const [from, to = from] = part.split('-').map(Number);
      if (from === undefined || to === undefined || !Number.isInteger(from) || !Number.isInteger(to))
        return undefined;
      for (let cpu = from; cpu <= to; cpu++) cpus.push(cpu);
    }
    return cpus;
  } catch {
    return undefined;
  }
}

/**
 * Two CPUs to keep the client and a single-threaded server apart, or undefined (no pinning) when fewer
 * than two are allowed or `taskset` is missing or refuses them.
 */
export function pinningCpus(): { readonly client: number; readonly server: number } | undefined {
  const [client, server] = allowedCpus() ?? [];
  if (client === undefined || server === undefined) return undefined;
  for (const cpu of [client, server]) {
    const probe = spawnSync('taskset', ['-c', String(cpu), 'true'], { stdio: 'ignore', timeout: 5000 });
    if (probe.error !== undefined || probe.status !== 0) return undefined;
  }
  return { client, server };
}

const CLOCK_TICKS_PER_SEC = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = r.status === 0 ? Number(r.stdout.trim()) : Number.NaN;
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

/** User + system CPU seconds of a process and all its threads, from /proc/<pid>/stat; undefined off Linux. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is field 3, utime field 14, stime field 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS_PER_SEC : undefined;
  } catch {
    return undefined;
  }
}

/** Machine-wide CPU time from the first line of /proc/stat, in seconds summed over all CPUs. */
export interface MachineCpu {
  /** user + nice + system + irq + softirq. */
  readonly busySec: number;
  /** Time the hypervisor ran something else while a vCPU wanted to run. */
  readonly stealSec: number;
  /** All of the above plus idle and iowait. */
  readonly totalSec: number;
}

export function machineCpu(): MachineCpu | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice" (guest is already in user).
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 8 || f.some((n) => !Number.isFinite(n))) return undefined;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const busy = user + nice + system + irq + softirq;
    return {
      busySec: busy / CLOCK_TICKS_PER_SEC,
      stealSec: steal / CLOCK_TICKS_PER_SEC,
      totalSec: (busy + idle + iowait + steal) / CLOCK_TICKS_PER_SEC,
    };
  } catch {
    return undefined;
  }
}
