/**
 * The main-thread side of the engines: starts one worker thread per `--workers`, gives each a
 * contiguous slice of the allocations and its own peers, and runs setup, windows and close on all of
 * them at once, every step bounded by a timeout. A worker that fails or exits early fails the step.
 */
import { Worker } from 'node:worker_threads';
import type { EngineConfig, SetupReport, WindowReport, WorkerReply, WorkerRequest } from './types.js';

/** Slice `total` allocations over `workers`: the first `total % workers` get one more. */
export function sliceFlows(total: number, workers: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  const base = Math.floor(total / workers);
  const extra = total % workers;
  let first = 0;
  for (let w = 0; w < workers; w++) {
    const count = base + (w < extra ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

/** Splits a total rate over engines in proportion to their active allocations. */
export function splitRate(totalPps: number, active: readonly number[]): number[] {
  const sum = active.reduce((a, b) => a + b, 0);
  return active.map((n) => (sum === 0 ? 0 : (totalPps * n) / sum));
}

function workerUrl(): URL {
  // Under tsx (tests) this module is a .ts file and so is its sibling; compiled, both are .js.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./worker.${ext}`, import.meta.url);
}

interface Waiter {
  readonly kind: WorkerReply['kind'];
  resolve(reply: WorkerReply): void;
  reject(err: Error): void;
}

class WorkerHandle {
  readonly worker: Worker;
  readonly index: number;
  private waiter: Waiter | undefined;
  private failure: Error | undefined;
  progress = { sent: 0, received: 0 };
  exited = false;

  constructor(index: number, config: EngineConfig) {
    this.index = index;
    this.worker = new Worker(workerUrl(), { workerData: config });
    this.worker.on('message', (reply: WorkerReply) => this.onReply(reply));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      this.exited = true;
      if (this.waiter !== undefined && this.waiter.kind !== 'closed') {
        this.fail(new Error(`worker ${index} exited with code ${code}`));
      } else if (this.waiter?.kind === 'closed') {
        const w = this.waiter;
        this.waiter = undefined;
        w.resolve({ kind: 'closed' });
      }
    });
  }

  private onReply(reply: WorkerReply): void {
    if (reply.kind === 'progress') {
      this.progress = { sent: reply.sent, received: reply.received };
      return;
    }
    if (reply.kind === 'error') {
      this.fail(new Error(`worker ${this.index}: ${reply.message}`));
      return;
    }
    const w = this.waiter;
    if (w !== undefined && w.kind === reply.kind) {
      this.waiter = undefined;
      w.resolve(reply);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  /** Sends `request` and waits for the reply of kind `kind`, at most `timeoutMs`. */
  ask(request: WorkerRequest, kind: WorkerReply['kind'], timeoutMs: number): Promise<WorkerReply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.exited) return Promise.reject(new Error(`worker ${this.index} has exited`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`worker ${this.index}: no '${kind}' within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.waiter = {
        kind,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.worker.postMessage(request);
    });
  }
}

export class Coordinator {
  private readonly handles: WorkerHandle[];
  private readonly configs: readonly EngineConfig[];
  private active: number[] = [];

  constructor(configs: readonly EngineConfig[]) {
    this.configs = configs;
    this.handles = configs.map((c, i) => new WorkerHandle(i, c));
  }

  get workers(): number {
    return this.handles.length;
  }

  /** Sum of the workers' live counters (for the progress line). */
  progress(): { sent: number; received: number } {
    let sent = 0;
    let received = 0;
    for (const h of this.handles) {
      sent += h.progress.sent;
      received += h.progress.received;
    }
    return { sent, received };
  }

  /**
   * Opens every worker's sockets, then (once all are open, so the phases start together and the
   * Allocate rate is not diluted by thread start-up) sets the allocations up.
   */
  async setup(): Promise<SetupReport[]> {
    await Promise.all(
      this.handles.map((h, i) => {
        const c = this.configs[i]!;
        return h.ask({ kind: 'open' }, 'opened', 60_000 + c.flowCount * 10);
      }),
    );
    const replies = await Promise.all(
      this.handles.map((h, i) => {
        const c = this.configs[i]!;
        // Sockets, then three phases, each a few transaction timeouts per wave of `setupConcurrency`.
        const waves = Math.ceil(c.flowCount / c.setupConcurrency) + 1;
        const timeoutMs = Math.min(30 * 60_000, 60_000 + waves * 4 * 5_000);
        return h.ask({ kind: 'setup' }, 'setup-done', timeoutMs);
      }),
    );
    const reports = replies.map((r) => (r as Extract<WorkerReply, { kind: 'setup-done' }>).report);
    this.active = reports.map((r) => r.active);
    return reports;
  }

  /** One window on every worker at once: `totalPps` split by active allocations. */
  async window(trial: number, totalPps: number, durationMs: number): Promise<WindowReport[]> {
    const rates = splitRate(totalPps, this.active);
    for (const h of this.handles) h.progress = { sent: 0, received: 0 };
    const replies = await Promise.all(
      this.handles.map((h, i) =>
        h.ask(
          { kind: 'window', trial, ratePps: rates[i] ?? 0, durationMs },
          'window-done',
          durationMs + 30_000,
        ),
      ),
    );
    return replies.map((r) => (r as Extract<WorkerReply, { kind: 'window-done' }>).report);
  }

  /** Ends the windows in progress early; their replies still come. */
  stop(): void {
    for (const h of this.handles)
      if (!h.exited) h.worker.postMessage({ kind: 'stop' } satisfies WorkerRequest);
  }

  /** Releases the allocations (when `release`), closes the sockets, ends the threads. Never throws. */
  async close(release: boolean): Promise<void> {
    await Promise.all(
      this.handles.map(async (h) => {
        try {
          if (!h.exited) await h.ask({ kind: 'close', release }, 'closed', 15_000);
        } catch {
          // Fall through to terminate.
        }
        if (!h.exited) await h.worker.terminate();
      }),
    );
  }

  /** Immediate stop (second Ctrl-C, fatal errors). */
  async terminate(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
