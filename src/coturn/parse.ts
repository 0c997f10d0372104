/**
 * Reads coturn's configuration format (`turnserver.conf`) into entries, one per option line:
 *
 *   # a comment                  whole-line comments; blank lines are skipped
 *   listening-port=3478          key=value (spaces around '=' allowed)
 *   realm "example.org"          key and value separated by blanks
 *   lt-cred-mech                 a bare flag
 *   --fingerprint                the command-line spelling, leading dashes dropped
 *   user=alice:pw                repeated keys are kept in order (lists, or the last one wins)
 *
 * A value in double or single quotes loses them. A '#' after the key is part of the value (a
 * password may hold one), as coturn reads it. Pure: no file access.
 */

/** One option line of the file. */
export interface CoturnEntry {
  /** 1-based line number in the file. */
  readonly line: number;
  /** The option name as written, without leading dashes (coturn names are case-sensitive). */
  readonly key: string;
  /** The value, unquoted; undefined for a bare flag. */
  readonly value: string | undefined;
}

/** A line that is neither a comment nor an option. */
export interface CoturnSyntaxError {
  readonly line: number;
  readonly message: string;
}

export interface ParsedCoturnConfig {
  readonly entries: readonly CoturnEntry[];
  readonly errors: readonly CoturnSyntaxError[];
}

const KEY = /^[A-Za-z][A-Za-z0-9_-]*$/;

function unquote(value: string): string {
  if (value.length >= 2) {
    const first = value.charAt(0);
    if ((first === '"' || first === "'") && value.endsWith(first)) return value.slice(1, -1);
  }
  return value;
}

/** Splits one non-comment line into key and value. */
function parseLine(text: string, line: number): CoturnEntry | CoturnSyntaxError {
  const body = text.replace(/^-{1,2}/, '');
  const eq = body.indexOf('=');
  const blank = body.search(/\s/);
  let key: string;
  let value: string | undefined;
  if (eq >= 0 && (blank < 0 || eq < blank || body.slice(0, eq).trim() === body.slice(0, blank))) {
    key = body.slice(0, eq).trim();
    value = unquote(body.slice(eq + 1).trim());
  } else if (blank >= 0) {
    key = body.slice(0, blank);
    value = unquote(body.slice(blank).trim());
  } else {
    key = body;
    value = undefined;
  }
  if (!KEY.test(key)) return { line, message: `cannot read "${key}" as an option name` };
  return { line, key, value };
}

/** Parses the text of a coturn configuration file. */
export function parseCoturnConfig(text: string): ParsedCoturnConfig {
  const entries: CoturnEntry[] = [];
  const errors: CoturnSyntaxError[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const parsed = parseLine(trimmed, index + 1);
    if ('key' in parsed) entries.push(parsed);
    else errors.push(parsed);
  }
  return { entries, errors };
}
