/**
 * Side-by-side relay benchmark: turnpike (native data plane with one or two relay threads, its JS data
 * plane, optionally a base build), coturn (one relay thread, two, or all) and the bare Node forwarder,
 * driven by the same load tool (turnpike-bench) with the same workloads, in alternating rounds, on
 * 127.0.0.1. See bench/README.md for the method.
 *
 *   npm run bench:compare -- [--rounds 3] [--targets turnpike,turnpike-2t,turnpike-js,coturn,coturn-2t]
 *                            [--workloads LIST] [--skip LIST] [--smoke] [--baseline]
 *
 * Per round and target (each on a freshly started server): echo latency at 50 × 50 pps × 160 B; server
 * CPU per relayed packet at a fixed rate; back-to-back setups of 1000 allocations; the highest rate under
 * 1% loss for ChannelData client→peer with 100 and 1200 B, Send indications and peer→client (100
 * allocations each; 1 and 1000 allocations with rate-allocs); then, on another fresh server, its RSS with
 * 1 000 and 10 000 live allocations. Once per run: bench/binding for Binding requests/s. Results:
 * bench/results/compare-<date>.json and .md, and the table on stdout.
 *
 * This file is the run itself; the options are in options.ts, the workloads in relay.ts, memory.ts and
 * binding.ts (sharing context.ts), the record and its rendering in record.ts and report.ts.
 */
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCommandLine } from '../shared/cli.js';
import { environment } from '../shared/machine.js';
import { openFilesLimit } from '../shared/proc.js';
import { ChildRegistry, pinningCpus, stopChildrenOnSignals } from '../shared/processes.js';
import { type BenchRedis, startRedis } from '../shared/redis.js';
import { measureBinding } from './binding.js';
import { type Context, TargetFailure } from './context.js';
import { measureRss, tenKFeasibility } from './memory.js';
import { parseOptions, USAGE } from './options.js';
import { type CompareRecord, datedPath, render, renderRecord, writeRecord } from './record.js';
import { measureRelay, smoke } from './relay.js';
import type { BindingFigures, TargetRound } from './report.js';
import { buildTargets, COTURN_PORTS, type TargetName, TURNPIKE_PORTS } from './targets.js';
import { toolMainPath } from './tool.js';

async function main(): Promise<number> {
  const here = import.meta.dirname;
  // Compiled: dist/bench/compare → three levels up; under tsx: bench/compare → two.
  const repoRoot = import.meta.filename.endsWith('.ts')
    ? resolve(here, '..', '..')
    : resolve(here, '..', '..', '..');
  const options = parseCommandLine(() => parseOptions(process.argv.slice(2), repoRoot), USAGE);
  if (typeof options === 'number') return options;
  if (options.render !== undefined) return render(options.render, repoRoot);
  const toolMain = toolMainPath(repoRoot);
  const cpuCount = availableParallelism();
  const pin = options.pin ? pinningCpus() : undefined;
  const all = buildTargets({
    repoRoot,
    turnpikeBin: options.turnpikeBin,
    baseBin: options.baseBin,
    coturnBin: options.coturnBin,
    toolMain,
    cpuCount,
    sockBufBytes: options.sockBufBytes,
    redisUrl: () => redis?.url,
  });
  const targets = options.targets.map((n) => all.get(n)!);
  const registry = new ChildRegistry();
  const abort = stopChildrenOnSignals(registry);
  // The fleet target's Redis: one for the whole run. In a fleet it runs on a host of its own, so it
  // shares the load tool's CPU, never the server's (whose CPU time is what the setup figures count).
  let redis: BenchRedis | undefined;
  if (options.targets.includes('turnpike-fleet') && all.get('turnpike-fleet')?.skipReason === undefined)
    redis = await startRedis(registry, pin?.client);

  const env = environment(repoRoot);
  const tenK = tenKFeasibility();
  const ctx: Context = {
    options,
    registry,
    repoRoot,
    pin,
    tool: { registry, toolMain, clientCpu: pin?.client },
    abort,
    tenK,
    log: (line) => process.stdout.write(`${line}\n`),
  };
  process.stdout.write(
    `Relay comparison${options.smoke ? ' (smoke)' : ''}: ${options.targets.join(', ')}; ${options.rounds} round(s), 127.0.0.1\n` +
      `${env.cpuModel ?? 'unknown CPU'} × ${cpuCount}, Linux ${env.kernel}, Node ${env.node}\n` +
      (pin === undefined
        ? 'no CPU pinning: tool and server share all CPUs\n'
        : `pinned with taskset: load tool on CPU ${pin.client}, single-threaded servers on CPU ${pin.server}\n`) +
      `relay ports: turnpike ${TURNPIKE_PORTS.min}-${TURNPIKE_PORTS.max}, coturn ${COTURN_PORTS.min}-${COTURN_PORTS.max}` +
      `; ulimit -n ${openFilesLimit() ?? 'n/a'}; ${tenK.note ?? '10 000 allocations feasible'}\n\n`,
  );
  for (const t of targets)
    if (t.skipReason !== undefined) process.stdout.write(`${t.name}: skipped (${t.skipReason})\n`);

  if (options.smoke) {
    try {
      return await smoke(ctx, targets);
    } finally {
      await registry.stopAll();
    }
  }

  const rounds: TargetRound[] = [];
  const failed = new Map<TargetName, string>();
  let binding: BindingFigures | undefined;
  try {
    for (let round = 1; round <= options.rounds && !abort.aborted; round++) {
      const recs = new Map<TargetName, TargetRound>();
      for (const target of targets) {
        if (abort.aborted) break;
        if (target.skipReason !== undefined || failed.has(target.name)) continue;
        const rec: TargetRound = { round, target: target.name, rates: {}, errors: [] };
        recs.set(target.name, rec);
        rounds.push(rec);
        try {
          if ([...options.workloads].some((w) => w !== 'rss' && w !== 'binding')) {
            await measureRelay(ctx, target, round, rec);
          }
        } catch (err) {
          if (!(err instanceof TargetFailure)) throw err;
          failed.set(target.name, err.message);
          ctx.log(`round ${round} ${target.name}: FAILED: ${err.message}`);
        }
      }
      if (options.workloads.has('rss')) {
        for (const target of targets) {
          const rec = recs.get(target.name);
          if (abort.aborted || rec === undefined || failed.has(target.name)) continue;
          try {
            await measureRss(ctx, target, round, rec);
          } catch (err) {
            if (!(err instanceof TargetFailure)) throw err;
            rec.errors.push(err.message);
          }
        }
      }
    }
    if (options.workloads.has('binding') && !abort.aborted) {
      ctx.log('\nBinding requests/s (bench/binding):');
      binding = await measureBinding(ctx, targets);
    }
  } finally {
    await registry.stopAll();
  }
  if (abort.aborted) return 130;

  const measured = options.targets.filter((t) => all.get(t)?.skipReason === undefined);
  const partial: Omit<CompareRecord, 'summary' | 'targets'> = {
    benchmark: 'compare',
    environment: env,
    config: {
      ...options,
      workloads: [...options.workloads],
      skip: [...options.skip],
      measured,
      cpuCount,
      pinning: pin ?? null,
      tenK,
      failed: Object.fromEntries(failed),
      descriptions: Object.fromEntries(targets.map((t) => [t.name, t.description])),
    },
    binding: binding ?? null,
    rounds,
  };
  const { record, md } = renderRecord(partial);
  process.stdout.write(`\n${md}\n`);
  mkdirSync(options.outDir, { recursive: true });
  const jsonPath = datedPath(options.outDir, 'json');
  const mdPath = writeRecord(repoRoot, jsonPath, record, md);
  process.stdout.write(`\nwrote ${jsonPath}\nwrote ${mdPath}\n`);
  if (options.baseline) {
    const base = join(resolve(repoRoot, 'bench', 'results'), 'baseline-compare');
    writeRecord(repoRoot, `${base}.json`, record, md);
    process.stdout.write(`wrote ${base}.json and .md\n`);
  }
  const nothing = measured.filter(
    (t) => !rounds.some((r) => r.target === t && Object.keys(r.rates).length + (r.latency ? 1 : 0) > 0),
  );
  const anyRate = [...options.workloads].some((w) => w.startsWith('rate'));
  return failed.size > 0 || (nothing.length > 0 && anyRate) ? 1 : 0;
}

process.exitCode = await main();
