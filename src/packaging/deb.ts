/**
 * `npm run package:deb`: builds turnpike_<version>_all.deb with dpkg-deb from a built checkout.
 *
 *   /usr/lib/turnpike/            package.json, bin/, dist/src/, conf/turnpike.schema.json and the
 *                                 production node_modules (npm ci --omit=dev); build/Release/*.node
 *                                 when the native addon was built (the package is then for this
 *                                 machine's architecture, not `all`); without it the JS fallback runs
 *   /usr/bin/turnpike, turnpike-bench           symlinks to the package's bin/ scripts
 *   /lib/systemd/system/turnpike.service        conf/turnpike.service (DynamicUser: no system user)
 *   /etc/turnpike/turnserver.json               a conffile: every key at its default, so no user and
 *                                               no secret: STUN only, never an open relay
 *   /usr/share/man/man8/turnpike.8.gz, man1/turnpike-bench.1.gz
 *   /usr/share/doc/turnpike/                    README, copyright, the example configuration, the
 *                                               Grafana dashboard and the Prometheus alert rules
 *
 * The maintainer scripts create an empty root-only /etc/turnpike/secret (the unit's LoadCredential=
 * needs the file), reload systemd when it runs, stop the service on removal and remove the secret
 * on purge. The service is not started on install: the operator adds users or a secret first.
 *
 *   tsx src/packaging/deb.ts [--out DIR]     (DIR defaults to the repository root)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { exampleConfig, manPages } from '../config/generate-docs.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const LIB = 'usr/lib/turnpike';
const DOC = 'usr/share/doc/turnpike';
const UNIT = 'lib/systemd/system/turnpike.service';
const CONFIG = 'etc/turnpike/turnserver.json';
/** The Node.js version the package needs (package.json engines). */
const NODE_DEPENDS = 'nodejs (>= 20.19)';

interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly license: string;
}

function write(stage: string, path: string, text: string | Buffer, mode = 0o644): void {
  const file = join(stage, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  chmodSync(file, mode);
}

function copy(stage: string, from: string, to: string, mode = 0o644): void {
  write(stage, to, readFileSync(join(root, from)), mode);
}

/** Every regular file under `dir`, as paths relative to it. */
function files(dir: string, under = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, under), { withFileTypes: true })) {
    const path = join(under, entry.name);
    if (entry.isDirectory()) out.push(...files(dir, path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/** Installed-Size: the staged files in KiB. */
function installedSizeKiB(stage: string): number {
  let bytes = 0;
  for (const path of files(stage)) if (!path.startsWith('DEBIAN')) bytes += statSync(join(stage, path)).size;
  return Math.ceil(bytes / 1024);
}

const POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
  # The unit's LoadCredential=secret:/etc/turnpike/secret needs the file: empty, root only, unless
  # REST credentials are used (then it holds the shared secret).
  if [ ! -e /etc/turnpike/secret ]; then
    install -m 0600 /dev/null /etc/turnpike/secret
  fi
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
  fi
fi
exit 0
`;

const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl --system stop turnpike.service >/dev/null 2>&1 || true
  systemctl --system disable turnpike.service >/dev/null 2>&1 || true
fi
exit 0
`;

const POSTRM = `#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -f /etc/turnpike/secret
  rmdir /etc/turnpike 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
exit 0
`;

function copyright(pkg: PackageJson): string {
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ${pkg.name}
Source: the turnpike repository

Files: *
Copyright: the turnpike authors
License: ${pkg.license}
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0; LICENSE in this directory holds the copy shipped with turnpike.
`;
}

/** The package's architecture: `all`, or this machine's when the native addon is included. */
function architecture(addons: readonly string[]): string {
  if (addons.length === 0) return 'all';
  return execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
}

/** Builds the package into `outDir` and returns its path. */
export function buildDeb(outDir: string): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;
  if (!existsSync(join(root, 'dist', 'src', 'cli.js'))) throw new Error('not built: run npm run build first');
  const stage = mkdtempSync(join(tmpdir(), 'turnpike-deb-'));
  try {
    chmodSync(stage, 0o755); // the package's root directory, /
    // The application: the built JS, the commands, the schema, and the production dependencies.
    copy(stage, 'package.json', `${LIB}/package.json`);
    copy(stage, 'package-lock.json', `${LIB}/package-lock.json`);
    for (const script of ['turnpike.js', 'turnpike-bench.js'])
      copy(stage, `bin/${script}`, `${LIB}/bin/${script}`, 0o755);
    cpSync(join(root, 'dist', 'src'), join(stage, LIB, 'dist', 'src'), { recursive: true });
    copy(stage, 'conf/turnpike.schema.json', `${LIB}/conf/turnpike.schema.json`);
    execFileSync(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'],
      {
        cwd: join(stage, LIB),
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, npm_config_update_notifier: 'false' },
      },
    );
    rmSync(join(stage, LIB, 'package-lock.json'));
    rmSync(join(stage, LIB, 'node_modules', '.package-lock.json'), { force: true });
    // The native addon, where it was built; the JS fallback needs nothing.
    const release = join(root, 'build', 'Release');
    const addons = existsSync(release) ? readdirSync(release).filter((f) => f.endsWith('.node')) : [];
    for (const addon of addons) copy(stage, `build/Release/${addon}`, `${LIB}/build/Release/${addon}`);
    for (const command of ['turnpike', 'turnpike-bench']) {
      mkdirSync(join(stage, 'usr', 'bin'), { recursive: true });
      symlinkSync(`../lib/turnpike/bin/${command}.js`, join(stage, 'usr', 'bin', command));
    }

    // systemd, the default configuration (a conffile), manual pages and documentation.
    copy(stage, 'conf/turnpike.service', UNIT);
    const config = { ...exampleConfig(), $schema: `/${LIB}/conf/turnpike.schema.json` };
    write(stage, CONFIG, JSON.stringify(config, null, 2) + '\n');
    for (const [path, text] of Object.entries(manPages())) {
      const name = path.slice(path.lastIndexOf('/') + 1);
      const section = name.slice(name.lastIndexOf('.') + 1);
      write(stage, `usr/share/man/man${section}/${name}.gz`, gzipSync(text, { level: 9 }));
    }
    write(stage, `${DOC}/README.md.gz`, gzipSync(readFileSync(join(root, 'README.md')), { level: 9 }));
    copy(stage, 'LICENSE', `${DOC}/LICENSE`);
    write(stage, `${DOC}/copyright`, copyright(pkg));
    copy(stage, 'turnserver.example.json', `${DOC}/examples/turnserver.example.json`);
    copy(stage, 'conf/grafana/turnpike.json', `${DOC}/examples/grafana/turnpike.json`);
    copy(stage, 'conf/prometheus/turnpike-alerts.yml', `${DOC}/examples/prometheus/turnpike-alerts.yml`);

    // Control files.
    const arch = architecture(addons);
    const control = [
      `Package: ${pkg.name}`,
      `Version: ${pkg.version}`,
      `Architecture: ${arch}`,
      'Maintainer: turnpike maintainers <turnpike@localhost>',
      `Installed-Size: ${installedSizeKiB(stage)}`,
      `Depends: ${NODE_DEPENDS}`,
      'Recommends: systemd',
      'Section: net',
      'Priority: optional',
      `Description: ${pkg.description}`,
      ' turnpike serves STUN and TURN over UDP, TCP and TLS with long-term and TURN REST',
      ' credentials, denies peers in private address ranges by default, exports Prometheus',
      ' metrics, reloads on SIGHUP and drains on SIGTERM. The packaged service runs as a',
      ' systemd dynamic user. turnpike import-coturn translates a coturn turnserver.conf.',
    ].join('\n');
    write(stage, 'DEBIAN/control', control + '\n');
    write(stage, 'DEBIAN/conffiles', `/${CONFIG}\n`);
    write(stage, 'DEBIAN/postinst', POSTINST, 0o755);
    write(stage, 'DEBIAN/prerm', PRERM, 0o755);
    write(stage, 'DEBIAN/postrm', POSTRM, 0o755);
    const sums = files(stage)
      .filter((p) => !p.startsWith('DEBIAN') && !p.startsWith('etc/'))
      .sort()
      .map(
        (p) =>
          `${createHash('md5')
            .update(readFileSync(join(stage, p)))
            .digest('hex')}  ${p}`,
      );
    write(stage, 'DEBIAN/md5sums', sums.join('\n') + '\n');

    mkdirSync(outDir, { recursive: true });
    const deb = join(outDir, `${pkg.name}_${pkg.version}_${arch}.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    return deb;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/.*\//, '/'))) {
  const at = process.argv.indexOf('--out');
  const out = at > 0 ? process.argv[at + 1] : root;
  if (out === undefined) throw new Error('--out needs a directory');
  const deb = buildDeb(out);
  process.stdout.write(`${relative(process.cwd(), deb) || deb}\n`);
}
