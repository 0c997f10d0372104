/**
 * The native packet parsers (native/packet.c) under a mutation fuzzer built with AddressSanitizer
 * and UBSan (native/fuzz/packet-fuzz.c): any out-of-bounds read, undefined behaviour or broken
 * invariant (a view outside the input, a response that does not parse back) aborts the run.
 * Three seeds, a million inputs each; every accepting path must have been reached.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const root = new URL('../../', import.meta.url).pathname;
const hasGcc = spawnSync('gcc', ['--version']).status === 0;
// Independent of the data plane the daemons run: CI's second pass (TURNPIKE_DATA_PLANE=js) skips it.
const jsPass = process.env['TURNPIKE_DATA_PLANE'] === 'js';

t.test(
  'packet parsers survive a million mutated datagrams per seed under ASan and UBSan',
  { skip: jsPass && 'run in the native pass' },
  (t) => {
    if (!hasGcc) {
      // CI machines have gcc (node-gyp needs it); only a machine without a compiler skips this.
      t.notOk(process.env['CI'], 'gcc is present in CI');
      t.end();
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'turnpike-fuzz-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const bin = join(dir, 'packet-fuzz');
    execFileSync(
      'gcc',
      [
        '-DTP_FUZZ_MAIN',
        '-g',
        '-O1',
        '-fsanitize=address,undefined',
        '-fno-sanitize-recover=all',
        '-Wall',
        '-Wextra',
        '-Werror',
        join(root, 'native/fuzz/packet-fuzz.c'),
        join(root, 'native/packet.c'),
        '-o',
        bin,
      ],
      { stdio: 'pipe' },
    );
    for (const seed of ['1', '20261207', '987654321']) {
      const r = spawnSync(bin, ['1000000', seed], {
        encoding: 'utf8',
        env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' },
      });
      t.equal(r.status, 0, `seed ${seed}: exit 0 (${r.stderr.slice(0, 2000)})`);
      t.notMatch(
        r.stderr,
        /AddressSanitizer|runtime error|invariant broken/,
        `seed ${seed}: no sanitizer report`,
      );
      const out = JSON.parse(r.stdout) as {
        iterations: number;
        binding: number;
        send: number;
        channelData: number;
      };
      t.equal(out.iterations, 1_000_000);
      // Each accepting path is reached often enough that the checks behind it ran many times.
      t.ok(
        out.binding > 10_000 && out.send > 10_000 && out.channelData > 10_000,
        `seed ${seed}: ${r.stdout.trim()}`,
      );
    }
    t.end();
  },
);
