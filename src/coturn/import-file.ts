/** `turnpike import-coturn`: reads a coturn configuration file and translates it (see translate.ts). */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { parseCoturnConfig } from './parse.js';
import { formatImportReport } from './report.js';
import { translateCoturn } from './translate.js';

export interface ImportedFile {
  /** The turnpike configuration as JSON text, newline-terminated. */
  readonly json: string;
  /** The report for stderr. */
  readonly report: string;
  readonly hasSecrets: boolean;
}

/** Reads and translates `file`; `target` names where the JSON goes, for the report. Throws ConfigError. */
export function importCoturnFile(file: string, target: string): ImportedFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('config', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  const result = translateCoturn(parseCoturnConfig(text), file);
  return {
    json: JSON.stringify(result.config, null, 2) + '\n',
    report: formatImportReport(result, file, target),
    hasSecrets: result.hasSecrets,
  };
}
