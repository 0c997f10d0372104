/**
 * The `turnpike` command line.
 *
 *   turnpike [start] [options]        start the daemon (the default command)
 *   turnpike check-config [options]   print the effective configuration (secrets redacted), or the error
 *
 * Both commands take `-c, --config <file>` and one option per configuration key, named as the key.
 * Only options actually given override the file and the environment. Exit codes: 0; 78 (EX_CONFIG) for
 * any configuration or command-line error, so systemd's `RestartPreventExitStatus=78` stops a restart
 * loop; 1 for anything else. `bin/turnpike.js` calls `main()`; importing this module runs nothing.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { envName, loadConfig, redact, unknownEnvironmentVariables } from './config/load.js';
import { KEYS, type KeySpec } from './config/schema.js';
import type { Config } from './config/types.js';
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
    const runDaemon = io.runDaemon ?? (await import('./daemon.js')).runDaemon;
    // SIGHUP re-reads the same sources: the file, the environment and these options.
    await runDaemon(config, { reload: () => load(start, startOptions) });
  });

  const check = program
    .command('check-config')
    .description('validate the configuration and print it as JSON, secrets redacted (exit 78 if invalid)')
    .allowExcessArguments(false);
  const checkOptions = withConfigOptions(check);
  check.action(() => {
    const config = load(check, checkOptions);
    stdout(JSON.stringify(redact(config), null, 2) + '\n');
  });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    exitCode = exitCodeFor(error, stderr);
  }
  return exitCode;
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
