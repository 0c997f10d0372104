/**
 * The memory workload of `bench:compare`: a server's RSS idle, with 1 000 and with 10 000 live
 * allocations held by the load tool, and whether this machine can hold 10 000 at all (open files,
 * ephemeral ports).
 */
import { readFileSync } from 'node:fs';
import { openFilesLimit, processRssBytes } from '../shared/proc.js';
import type { Child } from '../shared/processes.js';
import { type Context, f0, f2, serverArgs, sleep, startServer, stopServer, workload } from './context.js';
import type { TargetRound } from './report.js';
import type { Target } from './targets.js';
import { holdAllocations } from './tool.js';

/** RSS with 1 000, then 10 000 live allocations (each with a permission and a channel), on a fresh server. */
export async function measureRss(
  ctx: Context,
  target: Target,
  round: number,
  rec: TargetRound,
): Promise<void> {
  const server = await startServer(ctx, target);
  const held: Child[] = [];
  const kib = (): number | undefined => {
    const b = processRssBytes(server.child.pid);
    return b === undefined ? undefined : b / 1024;
  };
  const settle = async (): Promise<number | undefined> => {
    // Let the server finish its setup work, then take the last of a few readings.
    let v: number | undefined;
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      v = kib();
    }
    return v;
  };
  try {
    await workload(ctx, rec, 'rss', async () => {
      const base = serverArgs(ctx, target, server);
      const idleKiB = kib();
      const a = await holdAllocations(
        ctx.tool,
        `${target.name} r${round} rss 1k`,
        [...base, '--allocations', '1000'],
        300_000,
      );
      held.push(a.child);
      const at1kKiB = await settle();
      let at10kKiB: number | undefined;
      let active10k = a.active;
      let note = ctx.tenK.note;
      if (ctx.tenK.ok && !ctx.abort.aborted) {
        const b = await holdAllocations(
          ctx.tool,
          `${target.name} r${round} rss 10k`,
          [...base, '--allocations', '9000'],
          600_000,
        );
        held.push(b.child);
        at10kKiB = await settle();
        active10k = a.active + b.active;
        if (b.active < 9000) note = `only ${b.active} of 9000 further allocations succeeded`;
      }
      const added = active10k - a.active;
      const perAllocationKiB =
        at1kKiB === undefined || at10kKiB === undefined || added <= 0
          ? undefined
          : (at10kKiB - at1kKiB) / added;
      rec.rss = { idleKiB, at1kKiB, at10kKiB, active1k: a.active, active10k, perAllocationKiB, note };
      ctx.log(
        `round ${round} ${target.name.padEnd(13)} rss: idle ${f0(idleKiB)} KiB, ${a.active} alloc ${f0(at1kKiB)} KiB, ` +
          `${active10k} alloc ${f0(at10kKiB)} KiB → ${f2(perAllocationKiB)} KiB per allocation${note === undefined ? '' : ` (${note})`}`,
      );
    });
  } finally {
    await Promise.all(held.map((c) => ctx.registry.stop(c, 10_000)));
    await stopServer(ctx, server);
  }
}

function portRangeSize(): number | undefined {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return lo === undefined || hi === undefined ? undefined : hi - lo + 1;
  } catch {
    return undefined;
  }
}

export function tenKFeasibility(): { ok: boolean; note: string | undefined } {
  const nofile = openFilesLimit();
  const ephemeral = portRangeSize();
  const problems: string[] = [];
  // Each server needs a socket per allocation (+ its own); the tool holding 9 000 needs as many.
  if (nofile !== undefined && nofile < 10_500) problems.push(`ulimit -n is ${nofile} (< 10 500 needed)`);
  // The tool's client sockets and the forwarder's relay sockets come from the ephemeral range.
  if (ephemeral !== undefined && ephemeral < 20_500)
    problems.push(`ephemeral port range has ${ephemeral} ports (< 20 500)`);
  return problems.length === 0
    ? { ok: true, note: undefined }
    : { ok: false, note: `10 000 allocations skipped: ${problems.join('; ')}` };
}
