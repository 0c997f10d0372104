/**
 * Turns a parsed coturn configuration into a turnpike configuration object (the JSON file's shape),
 * and says what became of every line: translated, accepted with nothing to set, different in
 * turnpike, or not imported (with the reason). Never more open than the input: no option turns
 * authentication off, denied peers stay denied, and `no-multicast-peers` is checked against the
 * peer policy that will run. Every value is checked as the config loader checks it, so the result
 * loads; a value turnpike would refuse is a ConfigError naming the key and the line. Pure.
 */

import { KEYS, keySpec } from '../config/keys.js';
import { configFromObject } from '../config/load.js';
import { validateValue } from '../config/schema.js';
import { PeerPolicy } from '../core/peer-policy.js';
import { ConfigError } from '../errors.js';
import type { CoturnEntry, ParsedCoturnConfig } from './parse.js';
import { RULES, type Rule } from './rules.js';

/** One line of the report, about the option lines it names. */
export interface ImportNote {
  /** The coturn option (as written), or '' for a note about the whole configuration. */
  readonly option: string;
  /** Line numbers in the input (empty for a general note). */
  readonly lines: readonly number[];
  readonly text: string;
}

export interface CoturnImport {
  /** The turnpike configuration, keys in the reference's order; loads with `turnpike -c`. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly translated: readonly ImportNote[];
  /** Accepted with nothing to set: turnpike behaves so already. */
  readonly accepted: readonly ImportNote[];
  /** What turnpike does differently from coturn for this configuration. */
  readonly differences: readonly ImportNote[];
  /** Not imported, each with the reason. */
  readonly unsupported: readonly (ImportNote & { readonly weaker: boolean })[];
  /** The configuration holds user passwords or shared secrets. */
  readonly hasSecrets: boolean;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** Turnpike's own peer policy with nothing configured: what it denies by default. */
function builtInPolicy(allowed: readonly string[] = []): PeerPolicy {
  return new PeerPolicy({ allowed, denied: [], ownServices: [] });
}

/** The two ends of a peer pattern (address, CIDR or a-b range), as addresses. */
function ends(pattern: string): string[] {
  const dash = pattern.indexOf('-');
  if (dash > 0) return [pattern.slice(0, dash), pattern.slice(dash + 1)];
  return [pattern.replace(/\/\d+$/, '')];
}

class Builder {
  readonly values = new Map<string, unknown>();
  /** Lines each turnpike key came from, for error messages. */
  readonly origin = new Map<string, number[]>();
  readonly translated: ImportNote[] = [];
  readonly accepted: ImportNote[] = [];
  readonly differences: ImportNote[] = [];
  readonly unsupported: (ImportNote & { weaker: boolean })[] = [];

  readonly source: string;

  constructor(source: string) {
    this.source = source;
  }

  where(entry: CoturnEntry): string {
    return `${this.source} line ${entry.line}`;
  }

  fail(key: string, entry: CoturnEntry, problem: string): never {
    throw new ConfigError(key, `${problem} (${this.where(entry)})`);
  }

  /** Sets turnpike key `key` (lists: appends) from `entry`, checked as the loader checks it. */
  set(key: string, value: unknown, entry: CoturnEntry): void {
    const spec = keySpec(key);
    if (spec === undefined) throw new Error(`no turnpike key ${key}`);
    const lines = this.origin.get(key) ?? [];
    if (spec.kind === 'list') {
      const items = [...((this.values.get(key) as string[] | undefined) ?? []), String(value)];
      validateValue(spec, items, this.where(entry));
      this.values.set(key, items);
    } else {
      validateValue(spec, value, this.where(entry));
      if (lines.length > 0) {
        this.differences.push({
          option: entry.key,
          lines: [...lines, entry.line],
          text: `given ${lines.length + 1} times: line ${entry.line} wins, as in coturn`,
        });
      }
      this.values.set(key, value);
    }
    this.origin.set(key, [...lines, entry.line]);
    const shown = spec.secret
      ? key === 'user'
        ? `"${String(value).split(':')[0]}:…"`
        : '"…"'
      : JSON.stringify(value);
    this.translated.push({ option: entry.key, lines: [entry.line], text: `"${key}": ${shown}` });
  }

  /** The value of a 'key' rule's entry in the turnpike key's type. */
  convert(key: string, entry: CoturnEntry): unknown {
    const spec = keySpec(key);
    if (spec === undefined) throw new Error(`no turnpike key ${key}`);
    const { value } = entry;
    if (spec.kind === 'boolean') {
      if (value === undefined || TRUE.has(value.toLowerCase())) return true;
      if (FALSE.has(value.toLowerCase())) return false;
      return this.fail(key, entry, `${entry.key} is a flag; "${value}" is not true or false`);
    }
    if (value === undefined || value === '') return this.fail(key, entry, `${entry.key} needs a value`);
    if (spec.kind === 'integer') {
      if (!/^\d+$/.test(value)) return this.fail(key, entry, `${entry.key} must be a whole number`);
      return Number(value);
    }
    return value;
  }

  note(list: ImportNote[], entry: CoturnEntry, text: string): void {
    list.push({ option: entry.key, lines: [entry.line], text });
  }

  remove(key: string): boolean {
    this.origin.delete(key);
    return this.values.delete(key);
  }
}

const INT32_MAX = 2_147_483_647;

/** Applies the options handled by name (`special` in the rules table). */
function applySpecial(b: Builder, entry: CoturnEntry, flags: Set<string>): undefined {
  switch (entry.key) {
    case 'no-udp-relay':
      return b.fail(
        'no-udp-relay',
        entry,
        'turnpike always relays UDP (RFC 6062 TCP relays come in addition, with tcp-relay), so it cannot honour no-udp-relay; remove the line to relay UDP',
      );
    case 'no-auth':
      b.unsupported.push({
        option: entry.key,
        lines: [entry.line],
        text: 'turnpike never relays without credentials (no open relay): TURN stays off until user or use-auth-secret lines give credentials',
        weaker: false,
      });
      return;
    case 'rest-api-separator':
      if (entry.value === ':') b.note(b.accepted, entry, "':' is turnpike's separator too");
      else
        b.unsupported.push({
          option: entry.key,
          lines: [entry.line],
          text: `turnpike's TURN REST user names are <expiry>:<userid>; credentials made with "${entry.value ?? ''}" will be refused until their issuer uses ':'`,
          weaker: false,
        });
      return;
    case 'max-bps':
    case 'bps-capacity': {
      // Both count bytes per second. coturn limits each direction to the value; turnpike counts the
      // two directions together, so twice the value keeps every flow coturn let through.
      const perDirection = b.convert(entry.key, entry) as number;
      const combined = Math.min(2 * perDirection, INT32_MAX);
      b.set(entry.key, combined, entry);
      if (perDirection > 0)
        b.note(
          b.differences,
          entry,
          `coturn limits each direction to ${perDirection} bytes/s; turnpike counts both directions together, so ${entry.key} is ${combined}`,
        );
      return;
    }
    case 'stale-nonce':
      // coturn: a bare stale-nonce means 600 seconds.
      b.set('stale-nonce', entry.value === undefined ? 600 : b.convert('stale-nonce', entry), entry);
      return;
    case 'denied-peer-ip': {
      b.set('denied-peer-ip', b.convert('denied-peer-ip', entry), entry);
      const policy = builtInPolicy();
      const covered = ends(String(entry.value)).every((ip) => policy.check(ip, 1) !== 'allowed');
      if (covered)
        b.note(
          b.differences,
          entry,
          `${entry.value} is already in turnpike's built-in deny list; kept, and it stays denied even if the built-in list changes`,
        );
      return;
    }
    case 'allow-loopback-peers':
      for (const range of ['127.0.0.0/8', '::1']) b.set('allowed-peer-ip', range, entry);
      b.note(
        b.differences,
        entry,
        'loopback peers reach the services of this host; turnpike denies them unless allowed-peer-ip opens them, as done here (meant for tests)',
      );
      return;
    case 'no-multicast-peers':
      flags.add('no-multicast-peers');
      return;
    case 'stun-only':
      flags.add('stun-only');
      return;
    case 'no-tcp-relay':
      // turnpike's default already: tcp-relay stays off.
      flags.add('no-tcp-relay');
      b.note(b.accepted, entry, 'RFC 6062 TCP relaying is off in turnpike unless tcp-relay is set');
      return;
    case 'keep-address-family':
      b.set('allocation-default-address-family', 'keep', entry);
      return;
    case 'Verbose':
      b.set('log-level', 'debug', entry);
      return;
    default:
      throw new Error(`no special rule for ${entry.key}`);
  }
}

function applyRule(b: Builder, entry: CoturnEntry, rule: Rule, flags: Set<string>): void {
  switch (rule.kind) {
    case 'key':
      b.set(rule.key, b.convert(rule.key, entry), entry);
      if (rule.differs !== undefined) b.note(b.differences, entry, rule.differs);
      return;
    case 'accepted':
      b.note(b.accepted, entry, rule.why);
      return;
    case 'unsupported':
      b.unsupported.push({
        option: entry.key,
        lines: [entry.line],
        text: rule.why,
        weaker: rule.weaker === true,
      });
      return;
    case 'special':
      applySpecial(b, entry, flags);
      return;
  }
}

/** What only the whole configuration shows: stun-only, multicast, credentials, the peer policy. */
function finish(b: Builder, entries: readonly CoturnEntry[], flags: Set<string>): void {
  const linesOf = (key: string): number[] => entries.filter((e) => e.key === key).map((e) => e.line);
  if (flags.has('stun-only')) {
    const dropped = ['user', 'static-auth-secret', 'use-auth-secret'].filter((key) => b.remove(key));
    b.translated.splice(
      0,
      b.translated.length,
      ...b.translated.filter((n) => !['user', 'static-auth-secret', 'use-auth-secret'].includes(n.option)),
    );
    b.differences.push({
      option: 'stun-only',
      lines: linesOf('stun-only'),
      text:
        'turnpike has no stun-only switch: without users or secrets it serves STUN and refuses TURN, so ' +
        (dropped.length > 0
          ? `${dropped.join(', ')} ${dropped.length > 1 ? 'were' : 'was'} left out`
          : 'none are set'),
    });
  }
  const allowed = (b.values.get('allowed-peer-ip') as string[] | undefined) ?? [];
  const policy = builtInPolicy(allowed);
  const multicastDenied = ['224.0.0.1', '239.255.255.250', 'ff02::1', 'ff0e::1'].every(
    (ip) => policy.check(ip, 1) !== 'allowed',
  );
  if (flags.has('no-multicast-peers')) {
    if (multicastDenied)
      b.accepted.push({
        option: 'no-multicast-peers',
        lines: linesOf('no-multicast-peers'),
        text: 'kept: turnpike denies multicast peers (224.0.0.0/4, ff00::/8) by default',
      });
    else
      b.unsupported.push({
        option: 'no-multicast-peers',
        lines: linesOf('no-multicast-peers'),
        text: 'an allowed-peer-ip line opens multicast addresses, and in turnpike (as in coturn) allowed wins over denied',
        weaker: true,
      });
  }
  const users = (b.values.get('user') as string[] | undefined) ?? [];
  const rest = b.values.get('use-auth-secret') === true;
  if (!flags.has('stun-only') && users.length === 0 && !rest) {
    b.differences.push({
      option: '',
      lines: [],
      text: 'no user lines and no use-auth-secret: turnpike serves STUN and refuses TURN ("TURN disabled") until you add credentials and reload (SIGHUP)',
    });
  }
  if (users.some((u) => /:0x[0-9a-fA-F]{32}$/.test(u)) && !b.values.has('realm')) {
    b.differences.push({
      option: 'user',
      lines: linesOf('user'),
      text: 'the 0x keys are MD5(user:realm:password) for the realm coturn used; no realm line was given and turnpike\'s default realm is "turnpike": set realm to the one the keys were made with',
    });
  }
  // coturn 4.6 binds channels in RFC 5766's 0x4000-0x7FFE, and its clients (turnutils_uclient among
  // them) may pick numbers above RFC 8656's 0x4FFF: keep them working where TURN is on.
  if (b.values.has('user') || b.values.get('use-auth-secret') === true) {
    b.values.set('rfc5766-channel-numbers', true);
    b.differences.push({
      option: '',
      lines: [],
      text: "rfc5766-channel-numbers is set: coturn accepts channel numbers 0x4000-0x7FFE (RFC 5766), and clients made for it (turnutils_uclient among them) may use numbers above 0x4FFF, the top of RFC 8656's range and of turnpike's by default",
    });
  }
  // coturn relays TCP (RFC 6062) unless no-tcp-relay; turnpike only with tcp-relay. The import leaves
  // it off: browsers never use TCP allocations, and a TCP relay reaches TCP services (advice is to
  // disable TCP relaying unless it is needed). Said so where TURN is on and TCP relaying was.
  if (!flags.has('no-tcp-relay') && !flags.has('stun-only') && (users.length > 0 || rest)) {
    b.differences.push({
      option: '',
      lines: [],
      text: 'coturn relays TCP (RFC 6062 TCP allocations) unless no-tcp-relay is set; turnpike does only with tcp-relay, which this import leaves off (browsers never use TCP allocations, and a TCP relay reaches TCP services): set tcp-relay to true if your clients need them',
    });
  }
  b.differences.push({
    option: '',
    lines: [],
    text: "turnpike's peer policy denies private (RFC 1918), loopback, link-local (cloud metadata), CGNAT, unique-local, multicast and other special-purpose ranges by default, where coturn relays to anything not in denied-peer-ip: denied-peer-ip lines for those ranges are redundant (kept), and a peer on a private network (a media server, say) now needs an allowed-peer-ip line",
  });
}

/**
 * Translates a parsed coturn configuration. `source` names the input in messages. Throws
 * ConfigError (naming the key and the line) for a syntax error, an unknown option, a value turnpike
 * would refuse, or an option turnpike cannot honour safely.
 */
export function translateCoturn(parsed: ParsedCoturnConfig, source: string): CoturnImport {
  const [syntax] = parsed.errors;
  if (syntax !== undefined)
    throw new ConfigError('config', `${source} line ${syntax.line}: ${syntax.message}`);
  const b = new Builder(source);
  const flags = new Set<string>();
  for (const entry of parsed.entries) {
    const rule = Object.hasOwn(RULES, entry.key) ? RULES[entry.key] : undefined;
    if (rule === undefined) {
      return b.fail(
        entry.key,
        entry,
        `not a coturn option turnpike knows; nothing was imported (a mistyped security setting must not be dropped silently)`,
      );
    }
    applyRule(b, entry, rule, flags);
  }
  finish(b, parsed.entries, flags);

  const config: Record<string, unknown> = {};
  for (const spec of KEYS) if (b.values.has(spec.name)) config[spec.name] = b.values.get(spec.name);
  try {
    configFromObject(config, source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const lines = b.origin.get(err.key);
    const at = lines === undefined ? '' : ` (from line ${lines.join(', ')})`;
    throw new ConfigError(err.key, `${err.message.slice(err.key.length + 2)}${at}`, { cause: err });
  }
  return {
    config,
    translated: b.translated,
    accepted: b.accepted,
    differences: b.differences,
    unsupported: b.unsupported,
    hasSecrets: b.values.has('user') || b.values.has('static-auth-secret'),
  };
}
