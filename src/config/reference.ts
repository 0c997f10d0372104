/** Documents derived from the key table: the JSON Schema of the config file, and the README's reference. */

import { assertNever, KEYS, type KeySpec, SCHEMA_PROPERTY } from './keys.js';

/**
 * JSON Schema keywords for one key. No array of primitives appears in the output (`anyOf` of `const`
 * rather than `enum`, rather than `type: [..]`): Biome would fold such arrays onto one line, and the
 * committed schema must be both `JSON.stringify(jsonSchema(), null, 2)` and Biome-formatted.
 */
function jsonType(spec: KeySpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'integer':
      return { type: 'integer', minimum: spec.min, maximum: spec.max, default: spec.default };
    case 'boolean':
      return { type: 'boolean', default: spec.default };
    case 'enum':
      return { type: 'string', anyOf: spec.values.map((value) => ({ const: value })), default: spec.default };
    case 'string':
      return spec.default === undefined
        ? { anyOf: [{ type: 'string', minLength: 1, ...spec.jsonHint }, { type: 'null' }], default: null }
        : { type: 'string', minLength: 1, ...spec.jsonHint, default: spec.default };
    case 'list':
      return { type: 'array', items: { type: 'string', ...spec.jsonHint }, default: [...spec.default] };
    default:
      return assertNever(spec);
  }
}

/** JSON Schema (draft 2020-12) of the config file; committed as conf/turnpike.schema.json. */
export function jsonSchema(): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    [SCHEMA_PROPERTY]: { type: 'string', description: 'Path or URL of this schema, for editors; ignored.' },
  };
  for (const spec of KEYS) {
    properties[spec.name] = {
      description: spec.description,
      ...jsonType(spec),
      ...(spec.secret ? { writeOnly: true } : {}),
    };
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'turnpike configuration',
    description:
      'Configuration file of the turnpike STUN/TURN server. Every key can also be set with the' +
      ' TURNPIKE_<KEY> environment variable (or TURNPIKE_<KEY>_FILE) and the --<key> command-line option.',
    type: 'object',
    additionalProperties: false,
    properties,
  };
}

function markdownType(spec: KeySpec): string {
  switch (spec.kind) {
    case 'integer':
      return `integer ${spec.min}–${spec.max}`;
    case 'boolean':
      return 'boolean';
    case 'enum':
      return spec.values.join(' \\| ');
    case 'string':
      return `string \`${spec.arg}\``;
    case 'list':
      return `list of \`${spec.arg.replace(/\|/g, '\\|')}\` (repeatable)`;
    default:
      return assertNever(spec);
  }
}

function markdownDefault(spec: KeySpec): string {
  if (spec.kind === 'string' && spec.default === undefined) return 'unset';
  return '`' + JSON.stringify(spec.default) + '`';
}

/** The configuration reference as a markdown table (key, type, default, description), for the README. */
export function configReferenceMarkdown(): string {
  const rows = KEYS.map((spec) => {
    const description = spec.description.replace(/\|/g, '\\|') + (spec.secret ? ' Secret.' : '');
    return `| \`${spec.name}\` | ${markdownType(spec)} | ${markdownDefault(spec)} | ${description} |`;
  });
  return ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}
