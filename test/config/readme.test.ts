/** The README's configuration reference is generated from the key table; this keeps them in sync. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { configReferenceMarkdown } from '../../src/config/schema.js';

const START = '<!-- config-reference:start -->\n';
const END = '<!-- config-reference:end -->';

/** README.md with the reference section replaced by the generated table. */
function renderReadme(readme: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error('README.md lacks the config-reference markers');
  return readme.slice(0, a + START.length) + configReferenceMarkdown().trimEnd() + '\n' + readme.slice(b);
}

t.test('README configuration reference matches the key table', async (t) => {
  const path = new URL('../../README.md', import.meta.url);
  const readme = readFileSync(path, 'utf8');
  t.equal(
    readme,
    renderReadme(readme),
    'README out of date: paste configReferenceMarkdown() between the markers',
  );
});
