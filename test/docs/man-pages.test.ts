/**
 * The manual pages: the committed conf/man files are what `npm run gen:config` writes (so every
 * configuration key of the key table is in turnpike(8), and every option of turnpike-bench's usage
 * text in turnpike-bench(1)), and groff, mandoc and `man -l` read them without a warning.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { manPages } from '../../src/config/generate-docs.js';
import { KEYS } from '../../src/config/keys.js';
import { roff, usageSections } from '../../src/docs/man-pages.js';
import { USAGE } from '../../src/load-tool/options.js';
import { testDir } from '../fixtures/helpers/certificates.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const pages = manPages();

t.test('the committed pages are the generated ones', async (t) => {
  t.same(Object.keys(pages).sort(), ['conf/man/turnpike-bench.1', 'conf/man/turnpike.8']);
  for (const [path, text] of Object.entries(pages)) {
    t.equal(readFileSync(join(root, path), 'utf8'), text, `${path} out of date: run npm run gen:config`);
  }
});

t.test('turnpike(8) documents every configuration key, turnpike-bench(1) every option', async (t) => {
  const page = pages['conf/man/turnpike.8']!;
  for (const spec of KEYS) {
    t.ok(page.includes(`\\-\\-${spec.name.replace(/-/g, '\\-')}`), spec.name);
    t.ok(page.includes(roff(spec.description)), `${spec.name}: its description`);
  }
  t.match(page, /import\\-coturn/);
  const bench = pages['conf/man/turnpike-bench.1']!;
  const options = usageSections(USAGE).flatMap((s) => s.options.filter((o) => o.synopsis !== ''));
  t.ok(options.length > 30, `${options.length} options`);
  for (const o of options) {
    const first = o.synopsis.split(/\s+/)[0]!.replace(/,$/, '');
    t.ok(bench.includes(first.replace(/-/g, '\\-')), first);
  }
  // A description over several usage lines is kept whole (its last line was once dropped).
  const engine = options.find((o) => o.synopsis.startsWith('--engine'));
  t.match(engine?.description, /the report says which ran$/, '--engine: every line of its description');
  t.ok(bench.includes(roff(engine?.description ?? '-')), '--engine: the whole description in the page');
  t.ok(
    [...`${page}${bench}`].every((c) => c.charCodeAt(0) < 128),
    'ASCII only: other characters are written as \\[uXXXX]',
  );
});

const groff = '/usr/bin/groff';
const mandoc = '/usr/bin/mandoc';
const man = '/usr/bin/man';
const noTools =
  (!existsSync(groff) || !existsSync(mandoc)) && !process.env['CI']
    ? 'groff or mandoc not installed (CI installs groff-base and mandoc)'
    : false;

t.test('groff, mandoc and man -l read them without a warning', { skip: noTools }, async (t) => {
  const check = async (file: string): Promise<{ groff: string; mandoc: string; man: string }> => {
    const g = await run(groff, ['-man', '-ww', '-z', file], { timeout: 30_000 }).catch(
      (e: { stderr: string; code: number }) => ({ stderr: `${e.stderr} (exit ${e.code})` }),
    );
    const m = await run(mandoc, ['-T', 'lint', '-W', 'warning', file], { timeout: 30_000 }).catch(
      (e: { stdout: string; stderr: string; code: number }) => ({
        stdout: `${e.stdout}${e.stderr} (exit ${e.code})`,
      }),
    );
    let rendered = '';
    if (existsSync(man)) {
      const r = await run(man, ['--warnings', '-l', file], {
        timeout: 30_000,
        env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '0', MANPAGER: 'cat', PAGER: 'cat' },
      }).catch((e: { stdout: string; stderr: string }) => ({ stdout: e.stdout, stderr: `${e.stderr}` }));
      rendered = r.stderr;
    }
    return { groff: g.stderr, mandoc: m.stdout, man: rendered };
  };
  for (const path of Object.keys(pages)) {
    const r = await check(join(root, path));
    t.same(r, { groff: '', mandoc: '', man: '' }, `${path}: no warning`);
  }
  // The check can fail: a page with a mistake gets warnings from both.
  const broken = join(testDir(t), 'broken.8');
  writeFileSync(
    broken,
    '.TH BROKEN 8\n.SH NAME\nbroken \\- a page\n.SH DESCRIPTION\n.BX nothing\n\\fBbold\n',
  );
  const r = await check(broken);
  t.not(r.mandoc, '', `mandoc warns: ${r.mandoc.trim()}`);
  t.not(r.groff, '', `groff warns: ${r.groff.trim()}`);
});
