#!/usr/bin/env node
// Builds the native data plane (native/, binding.gyp) with node-gyp, against the local Node
// headers; run by `npm ci` (the install script) and by `npm run build:native`. A failed build is
// not an error: the daemon then runs the JavaScript data plane and says so at start.
//
//   node bin/build-native.js           node-gyp rebuild → build/Release/turnpike_dataplane.node
//   node bin/build-native.js --asan    the same sources with AddressSanitizer and UBSan
//                                      → build/asan/turnpike_dataplane.node (CI's ASan step)
//   TURNPIKE_SKIP_NATIVE=1             skip the build (the JS data plane only)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const asan = process.argv.includes('--asan');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  return r.status === 0;
}

if (process.env.TURNPIKE_SKIP_NATIVE === '1' || process.platform !== 'linux') {
  console.log(
    'turnpike: native data plane not built (TURNPIKE_SKIP_NATIVE=1 or not Linux); the JS data plane will run',
  );
  process.exit(0);
}

// The local Node headers (nothing may be downloaded): npm's nodedir setting, else the prefix of
// this node binary, else the usual system places.
const nodeDir = [
  process.env.npm_config_nodedir,
  join(dirname(process.execPath), '..'),
  '/usr',
  '/usr/local',
].find((d) => d !== undefined && d !== '' && existsSync(join(d, 'include', 'node', 'node_api.h')));

/** node-gyp: the devDependency, else the one npm bundles (npm sets npm_config_node_gyp for scripts). */
function nodeGyp() {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const bundled = process.env.npm_config_node_gyp;
    return bundled !== undefined && existsSync(bundled) ? bundled : undefined;
  }
}

if (!asan) {
  const gyp = nodeGyp();
  if (gyp === undefined) console.warn('turnpike: node-gyp not found');
  else if (nodeDir === undefined)
    console.warn('turnpike: no local Node headers (include/node/node_api.h) found');
  else if (run(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`])) process.exit(0);
  console.warn(
    'turnpike: the native data plane did not build; the daemon will run the JavaScript data plane',
  );
  process.exit(0);
}

// The ASan build: plain g++, the same sources and flags as binding.gyp plus the sanitizers.
if (nodeDir === undefined) throw new Error('no local Node headers (include/node/node_api.h) found');
const include = join(nodeDir, 'include', 'node');
const addonApi = createRequire(import.meta.url)('node-addon-api').include_dir;
const out = join(root, 'build', 'asan');
mkdirSync(out, { recursive: true });
const flags = [
  '-g',
  '-O1',
  '-fno-omit-frame-pointer',
  '-fsanitize=address,undefined',
  '-fPIC',
  '-Wall',
  '-Wextra',
];
const defs = ['-DNAPI_VERSION=8', '-DNAPI_DISABLE_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED'];
const ok =
  run('gcc', [...flags, '-c', 'native/packet.c', '-o', join(out, 'packet.o')]) &&
  run('g++', [
    ...flags,
    '-std=c++17',
    ...defs,
    `-I${include}`,
    `-I${join(root, addonApi.replace(/^"|"$/g, ''))}`,
    '-shared',
    'native/worker.cc',
    'native/addon.cc',
    'native/loadgen.cc',
    'native/bindgen.cc',
    'native/steer.cc',
    join(out, 'packet.o'),
    '-o',
    join(out, 'turnpike_dataplane.node'),
    '-lpthread',
  ]);
process.exit(ok ? 0 : 1);
