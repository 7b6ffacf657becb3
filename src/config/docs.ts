/**
 * The README's configuration table, generated from config/example.yaml (its values and the comment above each
 * field, read with the `yaml` Document API) and from the schema's leaf paths and environment names, so that the
 * README, the example file and the loader cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { ENV_ALIASES } from './defaults.ts';
import { envNameOf, leafPaths } from './load.ts';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';

/** config/example.yaml, from src/config/ and from dist/config/ alike. */
export const EXAMPLE_FILE = new URL('../../config/example.yaml', import.meta.url);

export const TABLE_START = '<!-- config-table:start -->';
export const TABLE_END = '<!-- config-table:end -->';

/** One documented field of example.yaml. */
export interface ExampleField {
  readonly path: string;
  /** The value as a plain value (`toJSON`), e.g. `'5s'`, `128`, `['5xx']`. */
  readonly value: unknown;
  /** The comment block right above the key, one entry per line, `#` and surrounding blanks removed. */
  readonly comment: readonly string[];
}

/**
 * Every leaf field of a config YAML document, in file order, with the comment above it. A leaf is a key whose value
 * is a scalar or a list. The comment of a map's first key is held by the map (`commentBefore`) in the yaml package;
 * only the last paragraph counts, so a file header above the first field is not taken for its comment.
 * @throws Error when the text is not valid YAML (the parser's first message)
 */
export function exampleFields(yamlText: string): ExampleField[] {
  const doc: Document = parseDocument(yamlText);
  if (doc.errors.length > 0)
    throw new CanaryGateError(ErrorCodes.DOCS_OUT_OF_SYNC, `not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const fields: ExampleField[] = [];
  const walk = (node: unknown, prefix: string): void => {
    if (!isMap(node)) return;
    node.items.forEach((pair, i) => {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const path = `${prefix}${key}`;
      const keyComment = isScalar(pair.key) ? pair.key.commentBefore : undefined;
      const raw = keyComment ?? (i === 0 ? node.commentBefore : undefined) ?? '';
      const value = pair.value as Node | null;
      if (isMap(value)) {
        walk(value, `${path}.`);
        return;
      }
      const paragraph = raw.split(/\n\s*\n/).pop() ?? '';
      const comment = paragraph
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.length > 0);
      fields.push({ path, value: isScalar(value) || isSeq(value) ? value.toJSON() : null, comment });
    });
  };
  walk(doc.contents, '');
  return fields;
}

/** Short aliases per path, e.g. 'redis.url' -> ['REDIS_URL']. */
function aliasesOf(path: string): string[] {
  return Object.entries(ENV_ALIASES)
    .filter(([, p]) => p === path)
    .map(([alias]) => alias);
}

/** Every environment name of a field: the long name first, then its aliases. */
export function envNamesOf(path: string): string[] {
  return [envNameOf(path), ...aliasesOf(path)];
}

/** The `Env:` line of a field's comment is documentation of envNamesOf; the table shows it in its own column. */
const ENV_LINE = /^Env:\s*/;

/** Escapes what markdown would read as a column break or an HTML tag (`<prefix>`). */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function showValue(value: unknown): string {
  // A list of maps (rollout.steps) reads as YAML flow maps: `{setWeight: 1}`.
  const item = (v: unknown): string =>
    typeof v === 'object' && v !== null ? JSON.stringify(v).replace(/"/g, '').replace(/:/g, ': ') : String(v);
  if (Array.isArray(value)) return `\`${value.map(item).join(', ')}\``;
  if (value === '') return '`""` (empty)';
  return `\`${String(value)}\``;
}

/**
 * The configuration table in markdown: Field | Default | Env | Description, one row per leaf of DEFAULTS in their
 * order, values and descriptions taken from config/example.yaml.
 * @throws Error naming the field when example.yaml lacks a field of DEFAULTS or its comment
 */
export function configTable(): string {
  const byPath = new Map(exampleFields(readFileSync(EXAMPLE_FILE, 'utf8')).map((f) => [f.path, f]));
  const rows = leafPaths().map(([path]) => {
    const field = byPath.get(path);
    if (field === undefined) throw new CanaryGateError(ErrorCodes.DOCS_OUT_OF_SYNC, `config/example.yaml lacks the field ${path}`);
    const description = field.comment.filter((line) => !ENV_LINE.test(line)).join(' ');
    if (description === '') throw new CanaryGateError(ErrorCodes.DOCS_OUT_OF_SYNC, `config/example.yaml has no comment above ${path}`);
    const env = envNamesOf(path)
      .map((name) => `\`${name}\``)
      .join('<br>');
    return `| \`${path}\` | ${cell(showValue(field.value))} | ${env} | ${cell(description)} |`;
  });
  return ['| Field | Default | Env | Description |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/**
 * Replaces what lies between the config-table markers of a README with a freshly generated table; the markers stay,
 * so running it again gives the same text.
 * @throws Error when either marker is missing or they are out of order
 */
export function renderReadmeSection(readme: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < 0)
    throw new CanaryGateError(ErrorCodes.DOCS_OUT_OF_SYNC, `README lacks the markers ${TABLE_START} and ${TABLE_END}`);
  if (end < start) throw new CanaryGateError(ErrorCodes.DOCS_OUT_OF_SYNC, `README has ${TABLE_END} before ${TABLE_START}`);
  return `${readme.slice(0, start + TABLE_START.length)}\n\n${configTable()}\n\n${readme.slice(end)}`;
}
