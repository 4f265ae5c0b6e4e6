/**
 * Keeps the README and the docs site honest: every flag, environment variable and custom resource kind
 * the binary has is documented, and nothing documented as a flag is missing from the binary.
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS } from '../src/api/index.ts';
import { type ConfigKey, ConfigSchema, describeSetting } from '../src/config/schema.ts';

const root = join(import.meta.dir, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const settings = Object.keys(ConfigSchema.entries) as ConfigKey[];

describe.each(['README.md', 'site/docs/configuration.md'])('%s', (path) => {
  const text = read(path);

  test.each(settings)('documents %s with its flag, variable and default', (key) => {
    const setting = describeSetting(key);
    const row = text.split('\n').find((line) => line.includes(`\`${setting.flag}\``));
    expect(row, `${setting.flag} missing from ${path}`).toBeDefined();
    expect(row).toContain(`\`${setting.env}\``);
    if (setting.default !== undefined) expect(row).toContain(`\`${String(setting.default)}\``);
  });

  test('documents no flag the binary does not have', () => {
    const known = new Set(settings.map((key) => describeSetting(key).flag));
    const documented = [...text.matchAll(/^\| `(--[a-z-]+)`/gm)].map((m) => m[1]!);
    expect(documented.filter((flag) => !known.has(flag))).toEqual([]);
  });
});

test.each(KINDS)('README documents the kind %s', (kind) => {
  expect(read('README.md')).toContain(`\`${kind}\``);
});
