/**
 * The `turnpike` command line.
 *
 *   turnpike [start] [options]        start the daemon (the default command)
 *   turnpike check-config [options]   print the effective configuration (secrets redacted), or the error
 *   turnpike credentials --userid <id> [--ttl <s>] [options]
 *                                     print ICE servers with TURN REST credentials (as GET /ice-servers)
 *   turnpike probe <uri> [--user U --password P | --secret S [--userid X]] [--json]
 *                                     check a STUN/TURN server end to end (exit 0 when every step passes)
 *   turnpike import-coturn <turnserver.conf> [-o <file>]
 *                                     translate a coturn configuration into turnpike JSON (report on stderr)
 *
 * start, check-config and credentials take `-c, --config <file>` and one option per configuration key, named as the key,
 * and coturn's spellings -L, -p, -r, --lt-cred-mech and --fingerprint (noted at start; `compatArgs`).
 * Only options actually given override the file and the environment. Exit codes: 0; 78 (EX_CONFIG) for
 * any configuration or command-line error, so systemd's `RestartPreventExitStatus=78` stops a restart
 * loop; 1 for anything else. `bin/turnpike.js` calls `main()`; importing this module runs nothing.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { KEYS, type KeySpec } from './config/keys.js';
import { envName, loadConfig, redact, unknownEnvironmentVariables } from './config/load.js';
import { checkStartup, configWarnings } from './config/startup-checks.js';
import type { Config } from './config/types.js';
import { restPassword } from './core/auth/rest-secret.js';
import { parseIp } from './core/ip.js';
import { compatArgs } from './coturn/cli-spellings.js';
import { checkUserId, iceServers, parseTtl } from './credentials.js';
import type { DaemonOptions } from './daemon.js';
import { ConfigError, EXIT_CONFIG, TurnError } from './errors.js';

/** What the CLI touches outside itself; tests replace parts of it. */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Defaults to `runDaemon` from `daemon.ts`, imported only when the daemon starts. */
  readonly runDaemon: (config: Config, options?: DaemonOptions) => Promise<void>;
}

/** One commander option per configuration key, with the key it sets. */
interface KeyOption {
  readonly spec: KeySpec;
  readonly option: Option;
}

function keyOptions(): KeyOption[] {
  return KEYS.map((spec): KeyOption => {
    if (spec.kind === 'boolean') {
      // `--no-udp` is a commander negatable option: its value is `udp: false` when given.
      return { spec, option: new Option(`--${spec.name}`, spec.description) };
    }
    const option = new Option(`--${spec.name} <${spec.arg}>`, spec.description);
    if (spec.kind === 'list') {
      option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    }
    return { spec, option };
  });
}

/**
 * The options given on `command`'s command line, by key name. Defaults commander invents (`udp: true`
 * for `--no-udp`) have source `default` and are skipped, so they never override the file.
 */
function givenOptions(command: Command, options: readonly KeyOption[]): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const { spec, option } of options) {
    const attribute = option.attributeName();
    if (command.getOptionValueSource(attribute) !== 'cli') continue;
    const value: unknown = command.getOptionValue(attribute);
    given[spec.name] = option.negate ? value === false : value;
  }
  return given;
}

function packageVersion(): string {
  // src/cli.ts when run from source, dist/src/cli.js when built: look up a few levels.
  let dir = import.meta.dirname;
  for (let level = 0; level < 3; level++) {
    dir = dirname(dir);
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'turnpike' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here; keep looking
    }
  }
  return 'unknown';
}

const ENVIRONMENT_HELP = `
Configuration sources, lowest precedence first: built-in defaults, the --config JSON file, environment
variables, command-line options. Every key can be set in the environment as ${envName('listening-port')}
(lists comma-separated, booleans true/false/1/0/yes/no/on/off), or read from a file named by
${envName('static-auth-secret')}_FILE (lists: one item per line) for systemd credentials and Docker secrets.`;

/** Runs the CLI with `argv` (the arguments after the script name) and returns the exit code. */
export async function main(argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const env = io.env ?? process.env;
  const stdout = io.stdout ?? ((text: string) => void process.stdout.write(text));
  const stderr = io.stderr ?? ((text: string) => void process.stderr.write(text));
  let exitCode = 0;
  /** Notes about coturn spellings accepted on the command line (see `compatArgs`). */
  const compatNotes: string[] = [];
  const printNotes = (): void => {
    for (const note of compatNotes) stderr(`turnpike: note: ${note}\n`);
  };

  const load = (command: Command, options: readonly KeyOption[]): Config => {
    const file = command.getOptionValue('config') as string | undefined;
    const config = loadConfig({ file, env, cli: givenOptions(command, options) });
    for (const name of unknownEnvironmentVariables(env)) {
      stderr(`turnpike: warning: ignoring environment variable ${name}: it sets no configuration key\n`);
    }
    return config;
  };

  const program = new Command('turnpike')
    .description('STUN/TURN relay server (RFC 8489, RFC 8656)')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: stdout, writeErr: stderr })
    .addHelpText(
      'after',
      "\nWithout a command, turnpike runs 'start'; 'turnpike start --help' lists the options.",
    );

  const withConfigOptions = (command: Command): KeyOption[] => {
    command.option('-c, --config <file>', 'JSON configuration file');
    const options = keyOptions();
    for (const { option } of options) command.addOption(option);
    command.addHelpText('after', ENVIRONMENT_HELP);
    return options;
  };

  const start = program
    .command('start', { isDefault: true })
    .description('start the server (the default command)')
    .allowExcessArguments(false);
  const startOptions = withConfigOptions(start);
  start.action(async () => {
    const config = load(start, startOptions);
    // The same checks as check-config: what the daemon would refuse, refused here with exit 78.
    checkStartup(config);
    const runDaemon = io.runDaemon ?? (await import('./daemon.js')).runDaemon;
    // SIGHUP re-reads the same sources: the file, the environment and these options.
    await runDaemon(config, {
      reload: () => load(start, startOptions),
      warnings: configWarnings(config),
      notes: compatNotes,
    });
  });

  const check = program
    .command('check-config')
    .description('validate the configuration and print it as JSON, secrets redacted (exit 78 if invalid)')
    .allowExcessArguments(false);
  const checkOptions = withConfigOptions(check);
  check.action(() => {
    printNotes();
    const config = load(check, checkOptions);
    checkStartup(config);
    for (const warning of configWarnings(config)) stderr(`turnpike: warning: ${warning}\n`);
    stdout(JSON.stringify(redact(config), null, 2) + '\n');
  });

  const credentials = program
    .command('credentials')
    .description(
      'print ICE servers with TURN REST credentials for a user id as JSON (an RTCConfiguration, as GET /ice-servers answers); needs use-auth-secret',
    )
    .option('--userid <id>', 'user id the credentials are for (required; no ":", at most 64 characters)')
    .option('--ttl <seconds>', 'credential lifetime in seconds, 60-86400', '3600')
    .option('--transport <list>', 'only these transports: comma-separated udp, tcp, tls')
    .allowExcessArguments(false);
  const credentialOptions = withConfigOptions(credentials);
  credentials.action(() => {
    printNotes();
    const config = load(credentials, credentialOptions);
    const o = credentials.opts<{ userid?: string; ttl: string; transport?: string }>();
    const r = iceServers(config, {
      userid: o.userid,
      ttl: o.ttl,
      transports: o.transport,
      nowSec: Math.floor(Date.now() / 1000),
    });
    if (!r.ok) credentials.error(`turnpike credentials: ${r.error}`, { exitCode: EXIT_CONFIG });
    else stdout(JSON.stringify(r.value, null, 2) + '\n');
  });

  const importCoturn = program
    .command('import-coturn')
    .description(
      'translate a coturn turnserver.conf into a turnpike JSON configuration; the report (what was translated, what turnpike does differently, what has no equivalent) goes to stderr',
    )
    .argument('<turnserver.conf>', "coturn's configuration file")
    .option(
      '-o, --output <file>',
      'write the JSON configuration here (0600 when it holds secrets) instead of stdout',
    )
    .allowExcessArguments(false);
  importCoturn.action(async (file: string) => {
    const o = importCoturn.opts<{ output?: string }>();
    const { importCoturnFile } = await import('./coturn/import-file.js');
    const { json, report, hasSecrets } = importCoturnFile(file, o.output ?? 'stdout');
    if (o.output === undefined) stdout(json);
    else writeOutput(o.output, json, hasSecrets ? 0o600 : 0o644);
    stderr(report);
  });

  const probe = program
    .command('probe')
    .description(
      'check a STUN/TURN server end to end: Binding, Allocate, CreatePermission, ChannelBind and a relayed round trip to a local peer (exit 0 when every step passes, 1 otherwise)',
    )
    .argument('<uri>', 'turn:host[:port][?transport=udp|tcp], turns:host[:port] or stun:host[:port]')
    .option('--user <name>', 'long-term credential user name')
    .option('--password <password>', 'long-term credential password')
    .option(
      '--secret <secret>',
      'TURN REST shared secret: the probe makes "<expiry>:<userid>" credentials with it',
    )
    .option('--userid <id>', 'user id of the REST credentials made with --secret', 'turnpike-probe')
    .option('--ttl <seconds>', 'lifetime of the REST credentials made with --secret', '600')
    .option(
      '--peer-address <ip>',
      'local address for the peer socket (default: loopback for a loopback relay, else the address that reaches the server)',
    )
    .option('--timeout <ms>', 'how long each step may wait for an answer', '3000')
    .option('--insecure', 'turns: do not verify the server certificate')
    .option('--json', 'print the report as JSON')
    .allowExcessArguments(false);
  probe.action(async (uriText: string) => {
    const o = probe.opts<{
      user?: string;
      password?: string;
      secret?: string;
      userid: string;
      ttl: string;
      peerAddress?: string;
      timeout: string;
      insecure?: boolean;
      json?: boolean;
    }>();
    const fail = (text: string): never => probe.error(`turnpike probe: ${text}`, { exitCode: EXIT_CONFIG });
    const { parseServerUri } = await import('./probe/uri.js');
    const parsed = parseServerUri(uriText);
    if (!parsed.ok) return fail(parsed.error);
    if (o.secret !== undefined && (o.user !== undefined || o.password !== undefined)) {
      return fail('give either --user and --password, or --secret');
    }
    if ((o.user === undefined) !== (o.password === undefined))
      return fail('--user and --password go together');
    if (o.peerAddress !== undefined && parseIp(o.peerAddress) === undefined) {
      return fail('--peer-address must be an IP address of this machine');
    }
    const timeoutMs = /^\d{1,6}$/.test(o.timeout) ? Number(o.timeout) : 0;
    if (timeoutMs < 10) return fail('--timeout must be a number of milliseconds, at least 10');
    let creds: { username: string; password: string } | undefined;
    if (o.secret !== undefined) {
      const bad = checkUserId(o.userid);
      if (bad !== undefined) return fail(bad);
      const ttl = parseTtl(o.ttl);
      if (typeof ttl === 'string') return fail(ttl);
      const username = `${Math.floor(Date.now() / 1000) + ttl}:${o.userid}`;
      creds = { username, password: restPassword(o.secret, username) };
    } else if (o.user !== undefined && o.password !== undefined) {
      creds = { username: o.user, password: o.password };
    }
    const { runProbe } = await import('./probe/probe.js');
    const { formatReport } = await import('./probe/report.js');
    const report = await runProbe({
      uri: parsed.uri,
      credentials: creds,
      timeoutMs,
      insecure: o.insecure === true,
      ...(o.peerAddress === undefined ? {} : { peerAddress: o.peerAddress }),
    });
    stdout(o.json === true ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
    exitCode = report.ok ? 0 : 1;
  });

  // `start` is the default command, so commander would take an unknown first word for an argument
  // of start ("too many arguments for 'start'"): name it as the unknown command it is.
  const first = argv[0];
  const commands = program.commands.map((c) => c.name());
  if (first !== undefined && !first.startsWith('-') && first !== 'help' && !commands.includes(first)) {
    stderr(`turnpike: unknown command '${first}' (commands: ${commands.join(', ')}; see turnpike --help)\n`);
    return EXIT_CONFIG;
  }

  // coturn's spellings (-L, -p, -r, --lt-cred-mech, --fingerprint) for the commands that take the
  // configuration options; each one used is noted at start.
  const named = first !== undefined && commands.includes(first);
  const command = named ? first : 'start';
  let args = [...argv];
  if (command === 'start' || command === 'check-config' || command === 'credentials') {
    const compat = compatArgs(argv.slice(named ? 1 : 0));
    args = named ? [first, ...compat.argv] : compat.argv;
    compatNotes.push(...compat.notes);
  }

  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (error) {
    exitCode = exitCodeFor(error, stderr);
  }
  return exitCode;
}

/** Writes `text` to `path` with `mode` (also when the file existed with another mode). */
function writeOutput(path: string, text: string, mode: number): void {
  try {
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
  } catch (error) {
    throw new ConfigError('output', `cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function exitCodeFor(error: unknown, stderr: (text: string) => void): number {
  if (error instanceof CommanderError) {
    // commander has printed its message (or the help/version text, with exit code 0)
    return error.exitCode === 0 ? 0 : EXIT_CONFIG;
  }
  if (error instanceof ConfigError) {
    stderr(`turnpike: configuration error: ${error.message}\n`);
    return EXIT_CONFIG;
  }
  if (error instanceof TurnError) {
    stderr(`turnpike: ${error.code}: ${error.message}\n`);
    return 1;
  }
  stderr(
    `turnpike: fatal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return 1;
}
