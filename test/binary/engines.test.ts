/**
 * The Node.js version the project supports for installing and developing (Node only runs npm, tsc,
 * VitePress and the protobuf generator; the binary and the tests run on Bun). One statement, in
 * package.json `engines`, that the README and the site repeat, and that the locked dependencies agree
 * with: `npm ci` on a supported Node prints no EBADENGINE warning. The lowest supported version is the
 * highest minimum any locked package declares (undici, under @kubernetes/client-node, wants 22.19).
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../harness/support/binary.ts';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');
const pkg = JSON.parse(read('package.json')) as { engines?: { node?: string; npm?: string } };
const lock = JSON.parse(read('package-lock.json')) as {
  packages: Record<string, { engines?: Record<string, string> | string[]; optional?: boolean }>;
};

/** The lowest version of a `>=x.y.z` range. */
const minimum = (range: string | undefined): string => {
  const match = /^>=(\d+\.\d+\.\d+)$/.exec(range ?? '');
  if (!match) throw new Error(`expected engines of the form ">=x.y.z", got ${JSON.stringify(range)}`);
  return match[1]!;
};

/**
 * Supported Node versions to check the lock against: the lowest, and the first release of each later
 * even (LTS) line up to the one current at the time of writing. npm: the one the lowest Node ships.
 */
const NODE_VERSIONS = [minimum(pkg.engines?.node), '24.0.0', '26.0.0'];
const NPM_VERSION = minimum(pkg.engines?.npm);

describe('supported Node.js', () => {
  test('package.json states the Node.js and npm versions', () => {
    expect(pkg.engines).toEqual({ node: '>=22.19.0', npm: '>=10.9.0' });
  });

  test.each(['README.md', 'site/quickstart.md', 'site/development.md'])(
    '%s states the same lowest Node.js version',
    (path) => {
      const [major, minor] = minimum(pkg.engines?.node).split('.');
      const stated = [...read(path).matchAll(/Node\.js (\d+\.\d+) or later/g)].map((m) => m[1]);
      expect(stated).toEqual([`${major}.${minor}`]);
    },
  );

  test.each(NODE_VERSIONS)(
    'npm ci on Node %s prints no EBADENGINE: every locked package accepts it',
    (node) => {
      const refused: string[] = [];
      for (const [path, entry] of Object.entries(lock.packages)) {
        if (path === '' || entry.engines === undefined || Array.isArray(entry.engines)) continue;
        const { node: nodeRange, npm: npmRange } = entry.engines;
        if (nodeRange !== undefined && !Bun.semver.satisfies(node, nodeRange)) {
          refused.push(`${path}: node ${nodeRange}`);
        }
        if (npmRange !== undefined && !Bun.semver.satisfies(NPM_VERSION, npmRange)) {
          refused.push(`${path}: npm ${npmRange}`);
        }
      }
      expect(refused).toEqual([]);
    },
  );

  test('a Node.js below the stated one is refused by some locked package (the minimum is not arbitrary)', () => {
    const [major, minor] = minimum(pkg.engines?.node).split('.').map(Number);
    const below = `${major}.${minor! - 1}.0`;
    const refusing = Object.entries(lock.packages).filter(([path, entry]) => {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      return path !== '' && range !== undefined && !Bun.semver.satisfies(below, range);
    });
    expect(refusing.map(([path]) => path)).not.toEqual([]);
  });

  test("the image's build stage uses a supported Node.js line", () => {
    const major = /^FROM node:(\d+)-/m.exec(read('Dockerfile'))?.[1];
    expect(major).toBeDefined();
    // A floating major tag: its newest release, so any line at or above the lowest supported major.
    expect(Number(major)).toBeGreaterThanOrEqual(Number(minimum(pkg.engines?.node).split('.')[0]));
  });

  test('the node on PATH, which runs npm here, is a supported one', async () => {
    const child = Bun.spawn(['node', '--version'], { stdout: 'pipe' });
    const version = (await new Response(child.stdout).text()).trim().replace(/^v/, '');
    expect(await child.exited).toBe(0);
    if (!Bun.semver.satisfies(version, pkg.engines!.node!)) {
      throw new Error(
        `node ${version} is not supported: package.json engines says node ${pkg.engines!.node} ` +
          '(npm ci warns EBADENGINE); install Node.js 22.19 or later',
      );
    }
  });
});
