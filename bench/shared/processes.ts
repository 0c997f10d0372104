/**
 * Child processes of the benchmarks: spawning (optionally pinned to a CPU with `taskset`), a registry of the
 * live ones so they can be stopped by PID on errors and signals, free loopback ports, and the two CPUs to
 * pin to (CPU time and the other /proc readers are in src/load-tool/proc.ts and ./proc.ts). A benchmark
 * only ever signals processes it spawned itself.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { isRunning, stopChild } from '../../src/load-tool/child.js';
import { allowedCpus, tasksetWorks } from '../../src/load-tool/proc.js';

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
  stop(child: Child, graceMs = 3000): Promise<ExitStatus> {
    return stopChild(child.process, child.exited, graceMs);
  }

  /** Stops every live child (used on errors and signals). */
  async stopAll(graceMs = 2000): Promise<void> {
    await Promise.all([...this.#live].map((child) => this.stop(child, graceMs)));
  }

  /** Last-resort, synchronous: SIGKILL whatever is still running (for the process 'exit' hook). */
  killAllNow(): void {
    for (const child of this.#live) {
      if (isRunning(child.process)) child.process.kill('SIGKILL');
    }
  }
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

/**
 * Two CPUs to keep the client and a single-threaded server apart, or undefined (no pinning) when fewer
 * than two are allowed or `taskset` is missing or refuses them.
 */
export function pinningCpus(): { readonly client: number; readonly server: number } | undefined {
  const [client, server] = allowedCpus() ?? [];
  if (client === undefined || server === undefined) return undefined;
  return tasksetWorks(client) && tasksetWorks(server) ? { client, server } : undefined;
}

/**
 * On SIGINT or SIGTERM: aborts the returned signal, so the benchmark winds down, and stops every child of
 * `registry`; a second signal SIGKILLs them and exits 130. At exit, whatever still runs is SIGKILLed.
 */
export function stopChildrenOnSignals(registry: ChildRegistry): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      registry.killAllNow();
      process.exit(130);
    }
    process.stderr.write(`\n${signal}: stopping the processes this benchmark started…\n`);
    controller.abort();
    void registry.stopAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => registry.killAllNow());
  return controller.signal;
}
