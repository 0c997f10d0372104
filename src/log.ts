/**
 * pino logger factory: JSON lines on stdout (journald-friendly), written synchronously so the
 * last words before an exit are not lost (the daemon logs per event, never per packet).
 * Secrets are redacted wherever they might appear in a logged object.
 */
import { type Logger, pino } from 'pino';
import type { LogLevel } from './config/types.js';

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

export function createLogger(level: LogLevel, destination: number | NodeJS.WritableStream = 1): Logger {
  const stream =
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
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
