/**
 * A `redis-server` for the fleet-mode target (Debian's package): on 127.0.0.1, on a free port, in its
 * own temporary directory, without persistence. Started once per run through the child registry (so
 * it is stopped by its PID with everything else), and reached at `url`.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, type ChildRegistry, freeUdpPort } from './processes.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** Why the fleet target cannot run here, or undefined. */
export function redisSkipReason(bin = REDIS_SERVER): string | undefined {
  return existsSync(bin) ? undefined : `${bin} not found (install Debian package redis-server)`;
}

export interface BenchRedis {
  readonly url: string;
  readonly child: Child;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts redis-server (on CPU `cpu` when given) and resolves once it accepts connections (10 s at
 * most).
 */
export async function startRedis(
  registry: ChildRegistry,
  cpu: number | undefined,
  bin = REDIS_SERVER,
): Promise<BenchRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'turnpike-bench-redis-'));
  const port = await freeUdpPort();
  const child = await registry.start(
    'redis-server',
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    cpu,
  );
  const started = Date.now();
  while (!child.output().includes('Ready to accept connections')) {
    if (child.process.exitCode !== null || Date.now() - started > 10_000) {
      await registry.stop(child);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start: ${child.output().slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    child,
    stop: async () => {
      await registry.stop(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
