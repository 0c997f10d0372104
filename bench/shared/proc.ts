/**
 * What the comparison benchmarks read from Linux /proc beyond what the load tool itself reads
 * (src/load-tool/proc.ts): a server's resident memory and this process's open-files limit. Each reader
 * returns undefined off Linux or when the file cannot be read.
 */
import { readFileSync } from 'node:fs';

/** VmRSS of process `pid` in bytes. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** The soft RLIMIT_NOFILE of this process (from /proc/self/limits), or undefined. */
export function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m?.[1] === undefined) return undefined;
    return m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
  } catch {
    return undefined;
  }
}
