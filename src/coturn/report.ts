/** The import report `turnpike import-coturn` prints on stderr: what became of every coturn line. */
import type { CoturnImport, ImportNote } from './translate.js';

function where(note: ImportNote): string {
  if (note.lines.length === 0) return '';
  return `line ${note.lines.join(', ')}: `;
}

function section<N extends ImportNote>(title: string, notes: readonly N[], text: (n: N) => string): string[] {
  if (notes.length === 0) return [];
  // In file order; notes about the whole configuration last.
  const first = (n: N): number => n.lines[0] ?? Number.POSITIVE_INFINITY;
  const sorted = [...notes].sort((a, b) => first(a) - first(b));
  return ['', `${title}:`, ...sorted.map((n) => `  ${where(n)}${text(n)}`)];
}

/** The report for `result`, read from `source` and written to `target` (a path, or 'stdout'). */
export function formatImportReport(result: CoturnImport, source: string, target: string): string {
  const options =
    result.translated.length + result.accepted.length + result.unsupported.length > 0
      ? ''
      : ' (no option lines)';
  const lines = [
    `turnpike import-coturn: ${source} -> ${target}${options}`,
    ...section('Translated', result.translated, (n) => `${n.option} -> ${n.text}`),
    ...section('Accepted, nothing to set', result.accepted, (n) => `${n.option}: ${n.text}`),
    ...section('Different in turnpike', result.differences, (n) =>
      n.option === '' ? n.text : `${n.option}: ${n.text}`,
    ),
    ...section(
      'No equivalent, not imported',
      result.unsupported,
      (n) => `${n.option}: ${n.text}${n.weaker ? ' [WARNING: this coturn setting tightened security]' : ''}`,
    ),
  ];
  if (result.hasSecrets) {
    lines.push(
      '',
      'Secrets: the output holds user passwords or shared secrets. Keep it readable by root only, or',
      'move them out of it: under the packaged systemd unit (DynamicUser) turnserver.json must stay',
      'world-readable (0644), and secrets go through LoadCredential= with TURNPIKE_USER_FILE or',
      'TURNPIKE_STATIC_AUTH_SECRET_FILE (README, "Running under systemd").',
    );
  }
  lines.push('', `Check it with: turnpike check-config -c ${target === 'stdout' ? '<file>' : target}`);
  return lines.join('\n') + '\n';
}
