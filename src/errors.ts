/**
 * Operational errors of the daemon (not protocol errors: those are values in the core).
 * Each class carries a stable `code`; tests and callers match on it, never on the message.
 */
export class TurnError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A bad configuration value. `key` names the configuration key; the process exits with EX_CONFIG (78). */
export class ConfigError extends TurnError {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('TURN_ERR_CONFIG', `${key}: ${message}`, options);
    this.key = key;
  }
}

/** A listener or relay socket could not be bound. */
export class BindError extends TurnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TURN_ERR_BIND', message, options);
  }
}

/** sysexits.h EX_CONFIG: configuration error. */
export const EXIT_CONFIG = 78;
