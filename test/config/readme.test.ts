/** The README's configuration reference is generated from the key table; this keeps them in sync. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { renderReadme } from '../../src/config/generate-docs.js';

t.test('README configuration reference matches the key table', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  t.equal(readme, renderReadme(readme), 'README out of date: run npm run gen:config');
});
