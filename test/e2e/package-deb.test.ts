/**
 * The Debian package: `npm run package:deb` builds turnpike_<version>_all.deb with what the package
 * must hold, and (as root, as CI runs) `dpkg -i` installs it on this machine: `turnpike --version`,
 * `turnpike check-config` on the packaged configuration, `systemd-analyze verify` of the installed
 * unit, and a daemon started as the unit's ExecStart= line starts it (its configuration copied with
 * a loopback address and a free port) answering a STUN Binding. `dpkg --purge` removes it at the
 * end, also when a step fails.
 */
import { type ExecFileException, execFile, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { AttrType, Class } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import { testDir } from '../fixtures/helpers/certificates.js';
import { freePort, watchStart } from '../fixtures/helpers/daemon.js';
import { bindingRequest, udpRequest } from '../fixtures/helpers/stun-client.js';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const DPKG_DEB = '/usr/bin/dpkg-deb';
const UNIT = '/lib/systemd/system/turnpike.service';
const CONFIG = '/etc/turnpike/turnserver.json';
const ANALYZE = '/usr/bin/systemd-analyze';
/** What systemd runs with: the unit's command is looked up on this PATH. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never throws on a non-zero exit. */
async function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  try {
    const r = await exec(file, args, { timeout: 120_000, env, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as ExecFileException & { stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? String(e),
    };
  }
}

const noDpkg = !existsSync(DPKG_DEB) && !process.env['CI'] ? 'dpkg-deb not installed (Debian only)' : false;

/** Builds the package into a fresh directory, as `npm run package:deb` does after the build. */
async function buildDeb(dir: string): Promise<string> {
  const r = await run(process.execPath, [
    '--import',
    'tsx',
    join(root, 'src', 'packaging', 'deb.ts'),
    '--out',
    dir,
  ]);
  if (r.code !== 0) throw new Error(`package:deb failed: ${r.stderr}`);
  return r.stdout.trim().startsWith('/') ? r.stdout.trim() : join(process.cwd(), r.stdout.trim());
}

t.test('npm run package:deb', { skip: noDpkg }, async (t) => {
  const script = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  ).scripts['package:deb'];
  t.equal(script, 'npm run build --silent && tsx src/packaging/deb.ts', 'builds, then packages');
  const deb = await buildDeb(testDir(t));
  const native = existsSync(join(root, 'build', 'Release'));
  const arch = native ? (await run('dpkg', ['--print-architecture'])).stdout.trim() : 'all';
  t.equal(deb.slice(deb.lastIndexOf('/') + 1), `turnpike_${pkg.version}_${arch}.deb`);

  const field = async (name: string): Promise<string> =>
    (await run(DPKG_DEB, ['-f', deb, name])).stdout.trim();
  t.equal(await field('Package'), 'turnpike');
  t.equal(await field('Version'), pkg.version);
  t.equal(await field('Architecture'), arch);
  t.equal(await field('Depends'), 'nodejs (>= 20.19)');
  t.equal(
    (await run(DPKG_DEB, ['-I', deb, 'conffiles'])).stdout,
    `${CONFIG}\n`,
    'the configuration is a conffile',
  );
  const postinst = (await run(DPKG_DEB, ['-I', deb, 'postinst'])).stdout;
  t.notMatch(postinst, /adduser|useradd/, 'no system user: the unit has DynamicUser=yes');

  const listing = (await run(DPKG_DEB, ['-c', deb])).stdout;
  const paths = new Set(listing.split('\n').map((l) => /\.(\/\S*)/.exec(l)?.[1]?.replace(/\/$/, '') ?? ''));
  for (const path of [
    '/usr/bin/turnpike',
    '/usr/bin/turnpike-bench',
    '/usr/lib/turnpike/bin/turnpike.js',
    '/usr/lib/turnpike/dist/src/cli.js',
    '/usr/lib/turnpike/package.json',
    '/usr/lib/turnpike/node_modules/commander/package.json',
    '/usr/lib/turnpike/node_modules/pino/package.json',
    '/usr/lib/turnpike/node_modules/prom-client/package.json',
    UNIT,
    CONFIG,
    '/usr/share/man/man8/turnpike.8.gz',
    '/usr/share/man/man1/turnpike-bench.1.gz',
    '/usr/share/doc/turnpike/copyright',
    '/usr/share/doc/turnpike/README.md.gz',
    '/usr/share/doc/turnpike/examples/grafana/turnpike.json',
    '/usr/share/doc/turnpike/examples/prometheus/turnpike-alerts.yml',
  ]) {
    t.ok(paths.has(path), path);
  }
  for (const dev of ['typescript', 'tap', 'tsx', 'playwright-core', '@biomejs']) {
    t.notOk(paths.has(`/usr/lib/turnpike/node_modules/${dev}`), `no dev dependency ${dev}`);
  }
  t.notOk(
    [...paths].some((p) => !p.includes('/node_modules/') && p.endsWith('.ts') && !p.endsWith('.d.ts')),
    'no TypeScript sources of ours',
  );
  t.equal(
    [...paths].some((p) => p.endsWith('.node')),
    native,
    native ? 'the native addon is in' : 'no native addon built: none shipped (the JS fallback runs)',
  );
  const config = JSON.parse(
    (await run('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar -xO .${CONFIG}`])).stdout,
  ) as Record<string, unknown>;
  t.same(
    [config['user'], config['use-auth-secret'], config['static-auth-secret']],
    [[], false, []],
    'no users, no secret',
  );
});

const isRoot = process.getuid?.() === 0;
const installed = existsSync('/var/lib/dpkg/info/turnpike.list');
const installSkip = noDpkg
  ? noDpkg
  : !isRoot
    ? 'not root: dpkg -i needs root (CI runs as root); the package was built and inspected above'
    : installed
      ? 'a turnpike package is already installed on this machine: not replacing it'
      : false;

t.test('dpkg -i on this machine, then dpkg --purge', { skip: installSkip }, async (t) => {
  const dir = testDir(t);
  const deb = await buildDeb(dir);
  // Whatever happens below, the machine is left as it was.
  t.teardown(async () => {
    if (existsSync('/var/lib/dpkg/info/turnpike.list')) await run('dpkg', ['--purge', 'turnpike']);
  });
  const install = await run('dpkg', ['-i', deb]);
  t.comment(`dpkg -i ${deb}\n${install.stdout}${install.stderr}`);
  t.equal(install.code, 0, 'dpkg -i succeeds');

  const systemEnv = { PATH: SYSTEM_PATH, HOME: '/root', LANG: 'C.UTF-8' };
  const version = await run('turnpike', ['--version'], systemEnv);
  t.equal(version.stdout.trim(), pkg.version, `turnpike --version: ${version.stdout.trim()}`);
  t.ok(lstatSync('/usr/bin/turnpike').isSymbolicLink(), '/usr/bin/turnpike');
  const check = await run('turnpike', ['check-config', '-c', CONFIG], systemEnv);
  t.equal(check.code, 0, `check-config: ${check.stderr.trim()}`);
  const effective = JSON.parse(check.stdout) as Record<string, unknown>;
  t.same([effective['user'], effective['use-auth-secret']], [[], false], 'TURN off: no users or secrets');
  t.equal(statSync(CONFIG).mode & 0o777, 0o644, `${CONFIG} 0644 (the dynamic user reads it)`);
  t.equal(statSync('/etc/turnpike/secret').mode & 0o777, 0o600, '/etc/turnpike/secret made, root only');
  t.not((await run('getent', ['passwd', 'turnpike'])).code, 0, 'no system user (DynamicUser)');
  const man = await run('man', ['-w', 'turnpike'], systemEnv);
  t.equal(man.stdout.trim(), '/usr/share/man/man8/turnpike.8.gz', 'man turnpike finds the page');

  if (existsSync(ANALYZE)) {
    const verify = await run(ANALYZE, ['verify', UNIT], systemEnv);
    t.comment(`systemd-analyze verify ${UNIT}: exit ${verify.code} ${verify.stdout}${verify.stderr}`);
    t.equal(verify.code, 0, 'systemd-analyze verify passes');
    t.equal(
      `${verify.stdout}${verify.stderr}`
        .split('\n')
        .filter((l) => l.includes('turnpike'))
        .join('\n'),
      '',
      'no warning about the unit',
    );
  } else {
    t.fail(`${ANALYZE} missing: .ci/run installs systemd`);
  }

  await t.test('the daemon as the unit starts it answers a STUN Binding', async (t) => {
    const unit = readFileSync(UNIT, 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.split(/\s+/) ?? [];
    t.same(execStart, ['turnpike', '--config', CONFIG]);
    // The unit's Environment= lines, with %d the credentials directory systemd would fill.
    const credentials = join(dir, 'credentials');
    mkdirSync(credentials);
    writeFileSync(join(credentials, 'secret'), readFileSync('/etc/turnpike/secret'));
    const env: NodeJS.ProcessEnv = { ...systemEnv, CREDENTIALS_DIRECTORY: credentials };
    for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm))
      env[m[1]!] = m[2]!.replaceAll('%d', credentials);
    t.equal(env['TURNPIKE_STATIC_AUTH_SECRET_FILE'], join(credentials, 'secret'));
    // The packaged configuration, listening on loopback at a free port instead of every address at 3478.
    const port = await freePort();
    const copy = join(dir, 'turnserver.json');
    writeFileSync(
      copy,
      JSON.stringify({
        ...(JSON.parse(readFileSync(CONFIG, 'utf8')) as Record<string, unknown>),
        'listening-ip': ['127.0.0.1'],
        'listening-port': port,
        'log-format': 'json',
      }),
    );
    const [command, ...args] = execStart.map((a) => (a === CONFIG ? copy : a));
    const proc = spawn(command!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = await watchStart(proc, 15_000);
    t.teardown(async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await out.exited;
    });
    t.comment(out.lines.slice(0, 4).join('\n'));
    const { view, localPort } = await udpRequest('127.0.0.1', port, bindingRequest());
    t.equal(view.cls, Class.Success, 'Binding success');
    t.same(readAddress(view, AttrType.XorMappedAddress), {
      family: 1,
      address: '127.0.0.1',
      port: localPort,
    });
    proc.kill('SIGTERM');
    t.equal(await out.exited, 0, 'SIGTERM: exit 0');
  });

  const purge = await run('dpkg', ['--purge', 'turnpike']);
  t.comment(`dpkg --purge turnpike\n${purge.stdout}${purge.stderr}`);
  t.equal(purge.code, 0, 'dpkg --purge succeeds');
  for (const path of ['/usr/bin/turnpike', '/usr/lib/turnpike', UNIT, '/etc/turnpike'])
    t.notOk(existsSync(path), `${path} removed`);
});
