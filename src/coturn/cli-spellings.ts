/**
 * coturn's command-line spellings that turnpike accepts for compatibility, so a `turnserver`
 * command line carries over: `-L <ip>`, `-p <port>`, `-r <realm>` (short forms of turnpike's own
 * options), and `--lt-cred-mech`/`-a` and `--fingerprint`/`-f`, which change nothing in turnpike.
 * `compatArgs` rewrites them into turnpike's spellings and returns one note for each, to be shown
 * at start. Pure.
 */
import { KEYS } from '../config/keys.js';

/** Short coturn options that take a value, and the turnpike option they mean. */
const SHORT_VALUE: Readonly<Record<string, string>> = {
  '-L': '--listening-ip',
  '-p': '--listening-port',
  '-r': '--realm',
};

/** coturn flags that turnpike accepts and ignores, with what turnpike does instead. */
const IGNORED_FLAGS: Readonly<Record<string, string>> = {
  '--lt-cred-mech': 'turnpike always uses the long-term credential mechanism for TURN',
  '-a': 'turnpike always uses the long-term credential mechanism for TURN (-a is --lt-cred-mech)',
  '--fingerprint': 'turnpike adds FINGERPRINT to a response whenever the request carried one',
  '-f': 'turnpike adds FINGERPRINT to a response whenever the request carried one (-f is --fingerprint)',
};

/** turnpike's own options that take a value: the word after them is a value, never rewritten. */
const TAKES_VALUE = new Set([
  '-c',
  '--config',
  ...KEYS.filter((spec) => spec.kind !== 'boolean').map((spec) => `--${spec.name}`),
]);

export interface CompatArgs {
  readonly argv: string[];
  /** One note per coturn spelling used, for the log or stderr. */
  readonly notes: string[];
}

/** Rewrites coturn spellings in `args` (the options of start, check-config or credentials). */
export function compatArgs(args: readonly string[]): CompatArgs {
  const argv: string[] = [];
  const notes: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      argv.push(...args.slice(i));
      break;
    }
    if (TAKES_VALUE.has(arg)) {
      argv.push(arg);
      if (i + 1 < args.length) argv.push(args[++i]!);
      continue;
    }
    const ignored = IGNORED_FLAGS[arg];
    if (ignored !== undefined) {
      notes.push(`${arg} is accepted for compatibility with coturn and changes nothing: ${ignored}`);
      continue;
    }
    const short = arg.slice(0, 2);
    const long = SHORT_VALUE[short];
    if (long !== undefined) {
      notes.push(`${short} is accepted for compatibility with coturn: it means ${long}`);
      argv.push(long);
      if (arg.length > 2) argv.push(arg.slice(2));
      else if (i + 1 < args.length) argv.push(args[++i]!);
      continue;
    }
    argv.push(arg);
  }
  return { argv, notes };
}
