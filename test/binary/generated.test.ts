/**
 * gen/ is committed so that building needs no code generation; this test fails when it no longer matches
 * what proto/ generates (someone edited a .proto and forgot `npm run generate`, or edited gen/ by hand).
 */
import { expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { generateProto, REPO_ROOT } from '../../scripts/generate-proto.ts';

function tree(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), readFileSync(path, 'utf8'));
  }
  return files;
}

test('gen/ matches what npm run generate produces from proto/', async () => {
  const out = mkdtempSync(join(tmpdir(), 'tsgw-gen-'));
  try {
    await generateProto(out);
    const fresh = tree(join(out, 'gen'));
    const committed = tree(join(REPO_ROOT, 'gen'));
    expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
    const stale = [...fresh].filter(([path, text]) => committed.get(path) !== text).map(([path]) => path);
    expect(stale).toEqual([]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 120_000);
