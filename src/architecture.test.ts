/**
 * The floor plan of src/, checked: every folder sits on a floor, and an import may only go down to a
 * lower floor. A newcomer can then read any folder knowing nothing above it, and no two folders can
 * import each other (a strict order has no cycles). The check parses the import specifiers of every
 * non-test file, so it fails the moment someone adds an import that runs uphill or closes a cycle, even
 * between two files of one folder. Tests beside the source may import any floor (a model test may use a
 * resource's trigger), but nothing outside src/ except gen/: unit tests need no harness from test/.
 *
 * `UPHILL_TODAY` is where an arrow that must run the wrong way for a while is listed, visibly (issue 14
 * emptied it); an entry that no longer occurs fails the test too, so it is deleted when fixed.
 */
import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = import.meta.dir;

/**
 * Floors, lowest first. A folder may import any folder on a strictly lower floor; folders on one floor
 * do not import each other. `base` is src/*.ts besides main.ts (errors, version). `resources/*` is
 * every folder of one custom resource (its reconciler, desired state, status and setup); `resources`
 * is the files beside them that wire several kinds together. `testing` (fixtures for the unit tests)
 * is the top floor, so no file that ships can import it and it never enters the binary.
 */
const FLOORS: readonly (readonly string[])[] = [
  ['base'],
  ['api', 'observability', 'time'],
  ['kube', 'tailscale', 'http', 'lifecycle'],
  ['controller-runtime'],
  ['model'],
  ['extension', 'extension/xds', 'coordination', 'tailnet-discovery'],
  ['proxy', 'extension/hooks', 'extension/server'],
  ['resources/*'],
  ['resources'],
  ['config'],
  ['app'],
  ['operator', 'standalone'],
  ['cli'],
  ['main'],
  ['testing'],
];

/** Arrows that run uphill today, as `from -> to`; delete each one as its import is fixed. */
const UPHILL_TODAY: readonly string[] = [];

function floorOf(folder: string): number {
  const floor = FLOORS.findIndex((names) =>
    names.some((name) =>
      name.endsWith('/*')
        ? folder.startsWith(name.slice(0, -1)) && !folder.slice(name.length - 1).includes('/')
        : name === folder,
    ),
  );
  if (floor < 0) throw new Error(`src/${folder} is on no floor: add it to FLOORS`);
  return floor;
}

/** The folder a file belongs to: its first segment under src/, or two for extension/ and resources/. */
export function folderOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split('/');
  if (parts.length === 1) return parts[0] === 'main.ts' ? 'main' : 'base';
  if ((parts[0] === 'extension' || parts[0] === 'resources') && parts.length > 2)
    return `${parts[0]}/${parts[1]}`;
  return parts[0];
}

function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return typeScriptFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function sourceFiles(dir: string): string[] {
  return typeScriptFiles(dir).filter((path) => !path.endsWith('.test.ts'));
}

const SPECIFIER = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Folder-to-folder arrows of src/, each with one file that makes it (for the failure message). */
function folderArrows(): Map<string, string> {
  const arrows = new Map<string, string>();
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file)!;
    for (const match of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const to = folderOf(resolve(dirname(file), match[1]!));
      if (to === undefined || to === from) continue;
      const arrow = `${from} -> ${to}`;
      if (!arrows.has(arrow)) arrows.set(arrow, relative(SRC, file));
    }
  }
  return arrows;
}

/** File-to-file arrows of src/ outside the tests, type-only imports included. */
function fileArrows(): string[] {
  return sourceFiles(SRC).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(SPECIFIER)]
      .map((match) => resolve(dirname(file), match[1]!))
      .filter((target) => folderOf(target) !== undefined)
      .map((target) => `${relative(SRC, file)} -> ${relative(SRC, target)}`),
  );
}

/**
 * Relative imports of any file under src/ (tests included) that leave src/ for anything but gen/ and
 * package.json (the version): a unit test that reaches into test/ pulls harness code, and often
 * binaries, into the fast suite.
 */
function importsLeavingSrc(): string[] {
  const gen = resolve(SRC, '../gen');
  const packageJson = resolve(SRC, '../package.json');
  const found: string[] = [];
  for (const file of typeScriptFiles(SRC))
    for (const match of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const target = resolve(dirname(file), match[1]!);
      if (folderOf(target) === undefined && !target.startsWith(`${gen}/`) && target !== packageJson)
        found.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
    }
  return found;
}

function cycles(arrows: Iterable<string>): string[][] {
  const next = new Map<string, string[]>();
  for (const arrow of arrows) {
    const [from, to] = arrow.split(' -> ') as [string, string];
    next.set(from, [...(next.get(from) ?? []), to]);
  }
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (node: string, path: string[]) => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'open') {
      found.push([...path.slice(path.indexOf(node)), node]);
      return;
    }
    state.set(node, 'open');
    for (const to of next.get(node) ?? []) visit(to, [...path, node]);
    state.set(node, 'done');
  };
  for (const node of next.keys()) visit(node, []);
  return found;
}

describe('src/ floor plan', () => {
  const arrows = folderArrows();

  test('every import goes down a floor (or is a listed arrow still being fixed)', () => {
    const uphill = [...arrows]
      .filter(([arrow]) => {
        const [from, to] = arrow.split(' -> ') as [string, string];
        return floorOf(to) >= floorOf(from) && !UPHILL_TODAY.includes(arrow);
      })
      .map(([arrow, file]) => `${arrow} (${file})`);
    expect(uphill).toEqual([]);
  });

  test('the list of arrows still being fixed only names arrows that still exist', () => {
    expect(UPHILL_TODAY.filter((arrow) => !arrows.has(arrow))).toEqual([]);
  });

  test('no import cycle between folders outside the listed arrows', () => {
    const settled = [...arrows.keys()].filter((arrow) => !UPHILL_TODAY.includes(arrow));
    expect(cycles(settled)).toEqual([]);
  });

  test('no import cycle between files either (a cycle inside one folder still makes load order matter)', () => {
    expect(cycles(fileArrows())).toEqual([]);
  });

  test('every floor names a folder that exists', () => {
    const folders = new Set(sourceFiles(SRC).map((file) => folderOf(file)!));
    const stale = FLOORS.flat().filter((name) =>
      name.endsWith('/*')
        ? ![...folders].some((folder) => folder.startsWith(name.slice(0, -1)))
        : !folders.has(name),
    );
    expect(stale).toEqual([]);
  });

  test('no file of src/, tests included, imports from outside src/ but gen/ (fixtures live in src/testing/)', () => {
    expect(importsLeavingSrc()).toEqual([]);
  });

  test('the cycle finder finds a cycle', () => {
    expect(cycles(['a -> b', 'b -> c', 'c -> a'])).toEqual([['a', 'b', 'c', 'a']]);
  });
});
