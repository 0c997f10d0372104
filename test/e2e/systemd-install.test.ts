/**
 * README "Running under systemd", followed as far as a machine without a running systemd allows:
 * the unit as it would be installed passes `systemd-analyze verify` with the command under either
 * npm prefix, the configuration file at its documented mode is readable by an unprivileged user
 * (the unit's DynamicUser) and the secret file is not, and the packed tarball holds what the steps
 * use. CI runs the tests as root with systemd installed.
 */
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const unit = readFileSync(join(root, 'conf', 'turnpike.service'), 'utf8');

/** The shell block of README's "Running under systemd" section. */
function installSteps(): string {
  const section = readme.slice(readme.indexOf('### Running under systemd'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('no shell block in "Running under systemd"');
  return block;
}

/** The mode the steps give `path` with `install -m <mode> … <path>`. */
function documentedMode(path: string): number {
  const line = installSteps()
    .split('\n')
    .find((l) => l.includes('install ') && l.split('#')[0]?.trim().endsWith(` ${path}`));
  const mode = line === undefined ? undefined : /\s-m\s+(0[0-7]{3})\s/.exec(line)?.[1];
  if (mode === undefined) throw new Error(`no "install -m <mode> … ${path}" step in README`);
  return Number.parseInt(mode, 8);
}

function tempDir(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the steps install from a packed tarball, not from the registry', async (t) => {
  const steps = installSteps();
  t.match(steps, /^npm ci && npm pack\b/m);
  t.match(steps, /^sudo npm install -g \.\/turnpike-\*\.tgz\b/m);
  t.notMatch(steps, /npm install -g turnpike\b/, 'the package is not published');
  t.match(steps, /install -D -m 0644 conf\/turnpike\.service \/etc\/systemd\/system\/turnpike\.service/);
});

t.test('the unit: an unqualified ExecStart, secrets as credentials, hardening kept', async (t) => {
  t.match(unit, /^ExecStart=turnpike --config \/etc\/turnpike\/turnserver\.json$/m);
  t.match(readme, 'ExecStart=turnpike --config /etc/turnpike/turnserver.json', 'README shows the same');
  t.match(unit, /^LoadCredential=secret:\/etc\/turnpike\/secret$/m);
  t.match(unit, /^Environment=TURNPIKE_STATIC_AUTH_SECRET_FILE=%d\/secret$/m);
  for (const line of [
    'DynamicUser=yes',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
    'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'RestartPreventExitStatus=78',
  ]) {
    t.match(unit, new RegExp(`^${line}$`, 'm'), line);
  }
});

const analyze = '/usr/bin/systemd-analyze';
const units = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(d));
const skip =
  (!existsSync(analyze) || units === undefined) && !process.env['CI']
    ? 'systemd-analyze or the system units are not installed (CI installs systemd)'
    : false;

t.test('systemd-analyze verify: the unit as installed, under either npm prefix', { skip }, async (t) => {
  if (!existsSync(analyze) || units === undefined) {
    t.fail(`${analyze} or the system units are missing and CI is set: .ci/run must install Debian's systemd`);
    return;
  }
  // A root directory with the system's units, kill (ExecReload) and the unit file as the steps
  // install it, unchanged; `turnpike` where `npm install -g` puts it, a symlink into the package.
  const sysroot = tempDir(t, 'turnpike-sysroot-');
  mkdirSync(join(sysroot, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(sysroot, 'usr', 'lib', 'systemd'), { recursive: true });
  symlinkSync('usr/bin', join(sysroot, 'bin'));
  symlinkSync('usr/lib', join(sysroot, 'lib'));
  cpSync(units, join(sysroot, 'usr', 'lib', 'systemd', 'system'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  copyFileSync(realpathSync('/bin/kill'), join(sysroot, 'usr', 'bin', 'kill'));
  chmodSync(join(sysroot, 'usr', 'bin', 'kill'), 0o755);
  mkdirSync(join(sysroot, 'etc', 'systemd', 'system'), { recursive: true });
  copyFileSync(
    join(root, 'conf', 'turnpike.service'),
    join(sysroot, 'etc', 'systemd', 'system', 'turnpike.service'),
  );
  const verify = async (): Promise<string> => {
    const r = await run(analyze, ['verify', `--root=${sysroot}`, 'turnpike.service'], {
      timeout: 30_000,
    }).catch((e: { stdout: string; stderr: string }) => e);
    return `${r.stdout}${r.stderr}`.trim();
  };

  const installed: string[] = [];
  for (const prefix of ['usr/local', 'usr']) {
    const pkg = join(sysroot, prefix, 'lib', 'node_modules', 'turnpike', 'bin');
    mkdirSync(pkg, { recursive: true });
    copyFileSync(join(root, 'bin', 'turnpike.js'), join(pkg, 'turnpike.js'));
    chmodSync(join(pkg, 'turnpike.js'), 0o755);
    mkdirSync(join(sysroot, prefix, 'bin'), { recursive: true });
    const command = join(sysroot, prefix, 'bin', 'turnpike');
    symlinkSync('../lib/node_modules/turnpike/bin/turnpike.js', command);
    t.equal(await verify(), '', `prefix /${prefix}: no warnings`);
    rmSync(command);
    installed.push(prefix);
  }
  t.same(installed, ['usr/local', 'usr']);
  t.match(await verify(), /Command turnpike is not executable/, 'not installed: verify says so');
});

t.test('the configuration file is readable by an unprivileged user, the secret is not', async (t) => {
  const configMode = documentedMode('/etc/turnpike/turnserver.json');
  const secretMode = documentedMode('/etc/turnpike/secret');
  t.equal(configMode, 0o644);
  t.equal(secretMode, 0o600);
  if (process.getuid?.() !== 0) {
    t.comment('not root: cannot create root-owned files and read them as nobody (CI runs as root): skipped');
    return;
  }
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p));
  if (runuser === undefined) {
    t.comment('runuser (util-linux) not installed: skipped');
    return;
  }
  // /etc/turnpike as ConfigurationDirectory= makes it (0755, root), files as `install -m` does.
  const etc = tempDir(t, 'turnpike-etc-');
  chmodSync(etc, 0o755);
  const readAsNobody = (mode: number, content: string): { status: number | null; stdout: string } => {
    const file = join(etc, `file-${mode.toString(8)}`);
    writeFileSync(file, content);
    chmodSync(file, mode);
    const r = spawnSync(runuser, ['-u', 'nobody', '--', 'cat', file], { encoding: 'utf8', timeout: 10_000 });
    return { status: r.status, stdout: r.stdout };
  };
  const example = readFileSync(join(root, 'turnserver.example.json'), 'utf8');
  t.same(readAsNobody(configMode, example), { status: 0, stdout: example }, 'config: readable');
  t.not(readAsNobody(0o640, example).status, 0, 'the old 0640 would not be (the check can fail)');
  t.not(readAsNobody(secretMode, 'secret\n').status, 0, 'secret: root only');
});

t.test('npm pack holds the command, the unit and the built CLI', async (t) => {
  // --ignore-scripts: no prepare (build) here; `npm test` has built dist/ already.
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    timeout: 60_000,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string; mode: number }[] }[];
  const files = new Map(packed?.files.map((f) => [f.path, f.mode]));
  for (const path of [
    'bin/turnpike.js',
    'bin/turnpike-bench.js',
    'conf/turnpike.service',
    'turnserver.example.json',
    'dist/src/cli.js',
    'dist/src/index.js',
    'dist/src/index.d.ts',
  ]) {
    t.ok(files.has(path), path);
  }
  t.ok((files.get('bin/turnpike.js') ?? 0) & 0o111, 'the command is executable');
  t.match(packed?.filename, /^turnpike-\d+\.\d+\.\d+\.tgz$/, 'matches the ./turnpike-*.tgz of the steps');
  t.notOk(
    [...files.keys()].some((p) => p.startsWith('test/') || p.startsWith('src/')),
    'no sources or tests',
  );
});
