/**
 * Every file of src/ outside the tests opens with its doc comment, tagged `@module`: the one place that
 * says why the file exists. Checked because a header can vanish unnoticed: Biome's unsafe fix for an
 * unused import deletes the comment above that import, which is the file's header when the import
 * comes first.
 */
import { expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const SRC = import.meta.dir;

const sourceFiles = (): string[] =>
  readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts'))
    .map((path) => join(SRC, path));

/** The leading doc comment of a file, or undefined when the file does not open with one. */
const headerOf = (text: string): string | undefined => {
  const match = /^(?:#![^\n]*\n)?\s*(\/\*\*[\s\S]*?\*\/)/.exec(text);
  return match?.[1];
};

test('there are source files to check (the walk works)', () => {
  expect(sourceFiles().length).toBeGreaterThan(100);
});

test('every non-test file of src/ opens with a doc comment tagged @module', () => {
  const missing = sourceFiles()
    .filter((file) => !headerOf(readFileSync(file, 'utf8'))?.includes('@module'))
    .map((file) => relative(SRC, file));
  expect(missing).toEqual([]);
});

test('a file whose header went with its first import is caught', () => {
  expect(
    headerOf("import { x } from './x.ts';\n/** Not a header. */\nexport const y = x;\n"),
  ).toBeUndefined();
  expect(headerOf('/**\n * Why.\n *\n * @module\n */\nimport { x } from "./x.ts";\n')).toContain('@module');
});
