/**
 * pino logger factory. JSON lines on stdout by default (journald-friendly), written synchronously
 * so the last words before an exit are not lost (the daemon logs per event, never per packet).
 * With `log-format pretty`, or `auto` on a terminal, lines go through pino-pretty instead, also
 * synchronously. Secrets are redacted wherever they might appear in a logged object.
 */
import { type Logger, pino } from 'pino';
import { PinoPretty } from 'pino-pretty';
import type { LogFormat, LogLevel } from './config/types.js';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  'secret',
  'credential',
  'key',
  '*.password',
  '*.secret',
  '*.credential',
  '*.key',
  'config.users',
  'config.staticAuthSecrets',
  'users',
  'staticAuthSecrets',
];

/** Whether `format` means pretty output on a stream whose TTY-ness is `isTty`. */
export function isPretty(format: LogFormat, isTty: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTty);
}

export function createLogger(
  level: LogLevel,
  destination: number | NodeJS.WritableStream = 1,
  format: LogFormat = 'json',
): Logger {
  const isTty = typeof destination === 'number' ? process.stdout.isTTY === true && destination === 1 : false;
  let stream: NodeJS.WritableStream | ReturnType<typeof pino.destination>;
  if (isPretty(format, isTty)) {
    stream = PinoPretty({
      destination,
      sync: true,
      colorize: isTty,
      translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
      ignore: 'pid,hostname,name',
    });
  } else {
    stream =
      typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  }
  return pino(
    {
      name: 'turnpike',
      level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '<redacted>' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}

/**
 * A budget for a log line that an attacker can trigger at will (authentication failures): at most
 * `perSec` lines a second after a burst of twice as many. `take` says whether to log now, and how
 * many lines were suppressed since the last one logged (to put into that line).
 */
export class LogBudget {
  private readonly perSec: number;
  private tokens: number;
  private updatedAtMs = 0;
  private suppressed = 0;

  constructor(perSec: number) {
    this.perSec = perSec;
    this.tokens = perSec * 2;
  }

  /** -1: do not log; otherwise log, mentioning this many suppressed lines. */
  take(nowMs: number): number {
    if (this.updatedAtMs !== 0)
      this.tokens = Math.min(
        this.perSec * 2,
        this.tokens + ((nowMs - this.updatedAtMs) / 1000) * this.perSec,
      );
    this.updatedAtMs = nowMs;
    if (this.tokens < 1) {
      this.suppressed++;
      return -1;
    }
    this.tokens--;
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}
