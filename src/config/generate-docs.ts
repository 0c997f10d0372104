/**
 * Regenerates the documents derived from the key table: conf/turnpike.schema.json,
 * turnserver.example.json (every key at its default), the README's configuration reference and the
 * manual pages conf/man/turnpike.8 and conf/man/turnpike-bench.1.
 * Run with `npm run gen:config` after changing src/config/schema.ts; tests fail until they match.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { benchManPage, turnpikeManPage } from '../docs/man-pages.js';
import { KEYS } from './keys.js';
import { configReferenceMarkdown, jsonSchema } from './reference.js';
import { defaults } from './schema.js';

const root = new URL('../../', import.meta.url);
const START = '<!-- config-reference:start -->\n';
const END = '<!-- config-reference:end -->';

export function exampleConfig(): Record<string, unknown> {
  const d = defaults() as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { $schema: './conf/turnpike.schema.json' };
  for (const spec of KEYS) out[spec.name] = d[spec.field] ?? null;
  return out;
}

export function renderReadme(readme: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error('README.md lacks the config-reference markers');
  return readme.slice(0, a + START.length) + configReferenceMarkdown().trimEnd() + '\n' + readme.slice(b);
}

/** The package version, which the manual pages carry. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string }).version;
}

/** The manual pages, by path under the repository root. */
export function manPages(): Record<string, string> {
  const version = packageVersion();
  return {
    'conf/man/turnpike.8': turnpikeManPage(version),
    'conf/man/turnpike-bench.1': benchManPage(version),
  };
}

export function generate(): void {
  writeFileSync(new URL('conf/turnpike.schema.json', root), JSON.stringify(jsonSchema(), null, 2) + '\n');
  writeFileSync(new URL('turnserver.example.json', root), JSON.stringify(exampleConfig(), null, 2) + '\n');
  const readmePath = new URL('README.md', root);
  writeFileSync(readmePath, renderReadme(readFileSync(readmePath, 'utf8')));
  mkdirSync(new URL('conf/man/', root), { recursive: true });
  for (const [path, text] of Object.entries(manPages())) writeFileSync(new URL(path, root), text);
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/.*\//, '/')))
  generate();
