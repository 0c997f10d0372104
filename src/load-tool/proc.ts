/**
 * What the tool reads from Linux /proc: CPU time of this thread, of another process, and of the whole
 * machine; per-socket receive drops from /proc/net/udp; and CPU pinning with `taskset`. Every reader
 * returns undefined off Linux or when the file cannot be read, and the tool reports "n/a". The bench/
 * harnesses use these too; what only they read is in bench/shared/proc.ts.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SEC = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const ticks = r.status === 0 ? Number(r.stdout.trim()) : Number.NaN;
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

/** utime + stime (fields 14 and 15) of a /proc/…/stat line, in seconds. */
function statCpuSeconds(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // Fields after "pid (comm) ": state is field 3, utime field 14, stime field 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS_PER_SEC : undefined;
  } catch {
    return undefined;
  }
}

type ThreadCpuUsage = () => { user: number; system: number };

/**
 * CPU seconds of the calling thread: `process.threadCpuUsage()` where Node has it (23.9+), else
 * /proc/thread-self/stat (the thread that reads it is the one described; 10 ms resolution).
 */
export function threadCpuSeconds(): number | undefined {
  const fn = (process as unknown as { threadCpuUsage?: ThreadCpuUsage }).threadCpuUsage;
  if (typeof fn === 'function') {
    const u = fn.call(process);
    return (u.user + u.system) / 1e6;
  }
  return statCpuSeconds('/proc/thread-self/stat');
}

/** CPU seconds of process `pid`, all threads. */
export function processCpuSeconds(pid: number): number | undefined {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** A reading of `processCpuFine`: both views of a process's CPU at one moment. */
export interface FineCpu {
  /** Summed over the threads alive now, from /proc/PID/task/TID/schedstat (nanosecond resolution). */
  readonly threadsSec: number;
  /** /proc/PID/stat: every thread the process ever had, in clock ticks (10 ms here). */
  readonly statSec: number;
}

/**
 * `pid`'s CPU at nanosecond resolution where the kernel keeps schedstat, for windows of a few hundred
 * milliseconds, which /proc/PID/stat's clock ticks measure to ±7% only. Undefined when either view
 * cannot be read.
 */
export function processCpuFine(pid: number): FineCpu | undefined {
  const statSec = processCpuSeconds(pid);
  if (statSec === undefined) return undefined;
  let ns = 0;
  let read = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const first = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
        if (!Number.isFinite(first)) return undefined;
        ns += first;
        read++;
      } catch {
        // the thread exited between the listing and the read: its time is in stat only
      }
    }
  } catch {
    return undefined;
  }
  // No thread read at all: no schedstat in this kernel (not a process whose threads all exited).
  return read === 0 ? undefined : { threadsSec: ns / 1e9, statSec };
}

/**
 * CPU seconds `pid` used between two `processCpuFine` readings: the threads' fine sum, unless threads
 * that exited in between took time it no longer sees (the tick count then exceeds it by more than
 * two ticks of rounding), where the tick count is the better figure.
 */
export function fineCpuDelta(before: FineCpu, after: FineCpu): number {
  const fine = after.threadsSec - before.threadsSec;
  const coarse = after.statSec - before.statSec;
  return fine >= 0 && coarse - fine <= 2 / CLOCK_TICKS_PER_SEC ? fine : coarse;
}

/** Machine-wide CPU seconds (summed over CPUs) from /proc/stat. */
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

/** The key /proc/net/udp uses for an IPv4 socket address: little-endian hex address, ':', hex port. */
export function procUdpKey(address: string, port: number): string | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  let hex = '';
  for (let i = 3; i >= 0; i--) {
    const n = Number(parts[i]);
    if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
    hex += n.toString(16).toUpperCase().padStart(2, '0');
  }
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Receive drops (the last column of /proc/net/udp: datagrams the kernel discarded because the socket's
 * buffer was full) summed over the sockets whose local address is in `keys`, and how many of them were
 * found. IPv4 only.
 */
export function udpDrops(keys: ReadonlySet<string>): { drops: number; sockets: number } | undefined {
  if (keys.size === 0) return undefined;
  let text: string;
  try {
    text = readFileSync('/proc/net/udp', 'utf8');
  } catch {
    return undefined;
  }
  let drops = 0;
  let sockets = 0;
  let start = text.indexOf('\n') + 1;
  while (start > 0 && start < text.length) {
    const end = text.indexOf('\n', start);
    const line = text.slice(start, end < 0 ? text.length : end);
    start = end < 0 ? text.length : end + 1;
    const f = line.trim().split(/\s+/);
    const local = f[1];
    if (local === undefined || !keys.has(local)) continue;
    const d = Number(f[f.length - 1]);
    if (Number.isFinite(d)) {
      drops += d;
      sockets++;
    }
  }
  return { drops, sockets };
}

/** The CPUs this process may run on (Cpus_allowed_list), or undefined. */
export function allowedCpus(): number[] | undefined {
  try {
    const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (list === undefined) return undefined;
    const cpus: number[] = [];
    for (const part of list.split(',')) {
      const [from, to = from] = part.split('-').map(Number);
      if (from === undefined || to === undefined || !Number.isInteger(from) || !Number.isInteger(to))
        return undefined;
      for (let cpu = from; cpu <= to && cpus.length < 4096; cpu++) cpus.push(cpu);
    }
    return cpus;
  } catch {
    return undefined;
  }
}

/** True when `taskset -c <cpu> true` works. */
export function tasksetWorks(cpu: number): boolean {
  const r = spawnSync('taskset', ['-c', String(cpu), 'true'], { stdio: 'ignore', timeout: 5000 });
  return r.error === undefined && r.status === 0;
}

/** Pins every thread of process `pid` to `cpus` (taskset -a -p); false when it could not. */
export function pinProcess(pid: number, cpus: readonly number[]): boolean {
  if (cpus.length === 0) return false;
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus.join(','), String(pid)], {
    stdio: 'ignore',
    timeout: 5000,
  });
  return r.error === undefined && r.status === 0;
}
