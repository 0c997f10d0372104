/**
 * Stopping a child process the benchmarks started, by its own PID: SIGTERM, then SIGKILL when it outlives a
 * grace period. Used by the self-test's forwarder and by the benchmarks' servers (bench/shared/processes.ts).
 */
import type { ChildProcess } from 'node:child_process';

/** True until `child` has exited or been killed by a signal. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Sends SIGTERM to `child`, then SIGKILL if it is still running after `graceMs`. `exited` settles when the
 * child exits; its value is returned once it has.
 */
export async function stopChild<T>(child: ChildProcess, exited: Promise<T>, graceMs: number): Promise<T> {
  if (!isRunning(child)) return exited;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([exited, deadline]);
  clearTimeout(timer);
  if (isRunning(child)) child.kill('SIGKILL');
  return exited;
}
