/**
 * systemd's notify protocol (sd_notify(3)): READY=1, RELOADING=1, STOPPING=1, STATUS=…, and
 * WATCHDOG=1 pings when the unit sets WatchdogSec=. Node has no AF_UNIX datagram sockets
 * (nodejs/node#29339), so the messages go through systemd's own `systemd-notify` tool, which
 * sends them to $NOTIFY_SOCKET with MAINPID set to this process and waits on a barrier so the
 * manager has read them before it exits (the unit needs NotifyAccess=all). Without
 * NOTIFY_SOCKET (not started by systemd) everything here is a no-op.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

export class SystemdNotifier {
  private readonly socket: string | undefined;
  private readonly log: Logger;
  private readonly command: string;
  private watchdog: NodeJS.Timeout | undefined;
  private failed = false;
  /** Messages sent (for tests and diagnostics). */
  sent = 0;

  constructor(env: NodeJS.ProcessEnv, log: Logger, command = 'systemd-notify') {
    this.socket = env['NOTIFY_SOCKET'];
    this.log = log;
    this.command = command;
    const usec = Number(env['WATCHDOG_USEC'] ?? 0);
    const watchdogPid = env['WATCHDOG_PID'];
    if (this.socket && usec > 0 && (watchdogPid === undefined || Number(watchdogPid) === process.pid)) {
      // Ping at half the interval, as sd_watchdog_enabled(3) recommends.
      this.watchdog = setInterval(() => this.notify('WATCHDOG=1'), Math.max(50, Math.floor(usec / 2000)));
      this.watchdog.unref();
    }
  }

  get enabled(): boolean {
    return this.socket !== undefined && this.socket !== '';
  }

  notify(...assignments: string[]): void {
    if (!this.enabled) return;
    const child = spawn(this.command, [`--pid=${process.pid}`, ...assignments], {
      stdio: 'ignore',
      env: { ...process.env, NOTIFY_SOCKET: this.socket },
    });
    this.sent++;
    child.on('error', (err) => {
      if (this.failed) return;
      this.failed = true;
      this.log.error({ err: err.message }, 'cannot notify systemd (is systemd-notify installed?)');
    });
    child.unref();
  }

  stopWatchdog(): void {
    if (this.watchdog !== undefined) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}
