import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OperatorError } from '../errors.ts';
import { formatProblem, listYamlFiles, loadResourceDirectory } from './resource-directory.ts';

const endpoints = (name: string, port: number | string = 80) => `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleEndpoints
metadata:
  name: ${name}
  namespace: default
spec:
  tailnet: corp
  endpoints:
    - name: web
      tailscaleFQDN: web.tail1234.ts.net
      port: ${port}
`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgw-resources-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadResourceDirectory', () => {
  test('loads every document of every YAML file, recursively, with defaults applied', async () => {
    await writeFile(join(dir, 'a.yaml'), `${endpoints('one')}---\n${endpoints('two')}`);
    await mkdir(join(dir, 'nested'));
    await writeFile(join(dir, 'nested', 'b.yml'), endpoints('three'));
    await writeFile(join(dir, 'notes.txt'), 'not yaml');
    const loaded = await loadResourceDirectory(dir);
    expect(loaded.problems).toEqual([]);
    expect(loaded.resources.map((r) => [r.file, r.document, r.resource.metadata.name])).toEqual([
      ['a.yaml', 0, 'one'],
      ['a.yaml', 1, 'two'],
      ['nested/b.yml', 0, 'three'],
    ]);
    const spec = loaded.resources[0]!.resource.spec as { endpoints: { protocol?: string }[] };
    expect(spec.endpoints[0]!.protocol).toBe('HTTP');
  });

  test('reports an invalid document with file, document index and field, and keeps the valid ones', async () => {
    await writeFile(join(dir, 'a.yaml'), `${endpoints('good')}---\n${endpoints('bad', 70000)}`);
    const loaded = await loadResourceDirectory(dir);
    expect(loaded.resources.map((r) => r.resource.metadata.name)).toEqual(['good']);
    expect(loaded.problems).toHaveLength(1);
    expect(loaded.problems[0]).toMatchObject({
      file: 'a.yaml',
      document: 1,
      field: 'spec.endpoints[0].port',
    });
    expect(formatProblem(loaded.problems[0]!)).toStartWith(
      'a.yaml#1 TailscaleEndpoints default/bad spec.endpoints[0].port: ',
    );
  });

  test('an unknown kind of our group is a problem; other groups are skipped', async () => {
    await writeFile(
      join(dir, 'a.yaml'),
      `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleNothing
metadata: { name: x }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
---
- just
- a list
`,
    );
    const loaded = await loadResourceDirectory(dir);
    expect(loaded.ignored).toEqual([
      expect.objectContaining({ file: 'a.yaml', document: 1, kind: 'HTTPRoute' }),
    ]);
    expect(loaded.problems.map((p) => p.document)).toEqual([0, 2]);
    expect(loaded.problems[0]!.message).toContain('TailscaleNothing');
    expect(loaded.problems[1]!.message).toContain('YAML mapping');
  });

  test('a YAML syntax error names the file and line, and keeps the last good documents of that file', async () => {
    await writeFile(join(dir, 'a.yaml'), endpoints('kept'));
    const first = await loadResourceDirectory(dir);
    await writeFile(join(dir, 'a.yaml'), 'apiVersion: [unclosed\nkind: x\n');
    const second = await loadResourceDirectory(dir, first);
    expect(second.problems[0]!.file).toBe('a.yaml');
    expect(second.problems[0]!.message).toMatch(/YAML syntax error at line \d+/);
    expect(second.resources.map((r) => r.resource.metadata.name)).toEqual(['kept']);
    const withoutHistory = await loadResourceDirectory(dir);
    expect(withoutHistory.resources).toEqual([]);
  });

  test('an object that turns invalid keeps serving its last good version, and says so', async () => {
    await writeFile(join(dir, 'a.yaml'), endpoints('web', 80));
    const first = await loadResourceDirectory(dir);
    await writeFile(join(dir, 'a.yaml'), endpoints('web', 70000));
    const second = await loadResourceDirectory(dir, first);
    expect(second.problems).toHaveLength(1);
    expect(second.problems[0]!.message).toContain('serving its last good version');
    const spec = second.resources[0]!.resource.spec as { endpoints: { port: number }[] };
    expect(spec.endpoints[0]!.port).toBe(80);
    // A new invalid object has no last good version to serve.
    await writeFile(join(dir, 'b.yaml'), endpoints('other', 70000));
    const third = await loadResourceDirectory(dir, second);
    expect(third.resources.map((r) => r.resource.metadata.name)).toEqual(['web']);
  });

  test('duplicates across files are reported against the later one', async () => {
    await writeFile(join(dir, 'a.yaml'), endpoints('same'));
    await writeFile(join(dir, 'b.yaml'), endpoints('same'));
    const loaded = await loadResourceDirectory(dir);
    expect(loaded.problems).toEqual([
      expect.objectContaining({ file: 'b.yaml', document: 0, field: 'metadata.name' }),
    ]);
    expect(loaded.problems[0]!.message).toContain('first defined in a.yaml document 0');
  });

  test('of duplicates only the first in path and document order is served, whichever file changed last', async () => {
    await writeFile(join(dir, 'b.yaml'), endpoints('same', 80));
    await writeFile(join(dir, 'a.yaml'), `${endpoints('other')}---\n${endpoints('same', 81)}`);
    await mkdir(join(dir, 'a'));
    await writeFile(join(dir, 'a', 'z.yaml'), endpoints('same', 82));
    const loaded = await loadResourceDirectory(dir);
    const served = loaded.resources.filter((r) => r.resource.metadata.name === 'same');
    // Paths compare byte-wise: `a.yaml` < `a/z.yaml` < `b.yaml`.
    expect(served.map((r) => [r.file, r.document])).toEqual([['a.yaml', 1]]);
    const spec = served[0]!.resource.spec as { endpoints: { port: number }[] };
    expect(spec.endpoints[0]!.port).toBe(81);
    expect(loaded.problems.map((p) => [p.file, p.message])).toEqual([
      ['a/z.yaml', expect.stringContaining('not served; first defined in a.yaml document 1')],
      ['b.yaml', expect.stringContaining('not served; first defined in a.yaml document 1')],
    ]);
    expect(loaded.resources.map((r) => r.resource.metadata.name)).toEqual(['other', 'same']);
  });

  test('a problem names the kind, namespace and name of its object', async () => {
    await writeFile(join(dir, 'a.yaml'), endpoints('bad', 70000));
    const loaded = await loadResourceDirectory(dir);
    expect(loaded.problems[0]).toMatchObject({
      kind: 'TailscaleEndpoints',
      namespace: 'default',
      name: 'bad',
    });
    expect(formatProblem(loaded.problems[0]!)).toStartWith(
      'a.yaml#0 TailscaleEndpoints default/bad spec.endpoints[0].port: ',
    );
  });

  test('an emptied file (a save that truncates first and writes later) keeps its last good documents', async () => {
    const route = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r }\n';
    await writeFile(join(dir, 'a.yaml'), `${endpoints('kept')}---\n${route}`);
    const first = await loadResourceDirectory(dir);
    await writeFile(join(dir, 'a.yaml'), '');
    const truncated = await loadResourceDirectory(dir, first);
    expect(truncated.resources.map((r) => r.resource.metadata.name)).toEqual(['kept']);
    expect(truncated.ignored.map((i) => i.kind)).toEqual(['HTTPRoute']);
    expect(truncated.problems).toEqual([
      expect.objectContaining({ file: 'a.yaml', message: expect.stringContaining('is empty') }),
    ]);
    // The write that follows has a syntax error: the last good version is still the one before the save.
    await writeFile(join(dir, 'a.yaml'), 'apiVersion: [unclosed\n');
    const broken = await loadResourceDirectory(dir, truncated);
    expect(broken.resources.map((r) => r.resource.metadata.name)).toEqual(['kept']);
    expect(broken.ignored.map((i) => i.kind)).toEqual(['HTTPRoute']);
    // A file that is new and empty has nothing to keep and is no problem.
    await writeFile(join(dir, 'b.yaml'), '');
    const fresh = await loadResourceDirectory(dir, broken);
    expect(fresh.problems.filter((p) => p.file === 'b.yaml')).toEqual([]);
    // Removing objects is done by deleting documents (a comment-only file is not empty) or the file.
    await writeFile(join(dir, 'a.yaml'), '# nothing here any more\n');
    const cleared = await loadResourceDirectory(dir, fresh);
    expect(cleared.resources).toEqual([]);
    expect(cleared.problems).toEqual([]);
  });

  test('documents of other groups keep their object, for the Envoy Gateway directory', async () => {
    const route = 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r }\n';
    await writeFile(join(dir, 'a.yaml'), route);
    const first = await loadResourceDirectory(dir);
    expect(first.ignored).toEqual([
      {
        file: 'a.yaml',
        document: 0,
        kind: 'HTTPRoute',
        object: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' } },
      },
    ]);
    await writeFile(join(dir, 'a.yaml'), 'kind: [unclosed\n');
    const broken = await loadResourceDirectory(dir, first);
    expect(broken.ignored).toEqual(first.ignored);
  });

  test('empty documents are skipped', async () => {
    await writeFile(join(dir, 'a.yaml'), `---\n# only a comment\n---\n${endpoints('x')}`);
    const loaded = await loadResourceDirectory(dir);
    expect(loaded.problems).toEqual([]);
    expect(loaded.resources).toHaveLength(1);
  });

  test('a missing directory or a file path is an Invalid error naming the flag and the path', async () => {
    const missing = join(dir, 'nope');
    expect(listYamlFiles(missing)).rejects.toThrow(`--resources ${missing} cannot be read: ENOENT`);
    await writeFile(join(dir, 'f.yaml'), '');
    const error = await listYamlFiles(join(dir, 'f.yaml')).catch((e) => e);
    expect(error).toBeInstanceOf(OperatorError);
    expect(error.code).toBe('Invalid');
    expect(error.message).toBe(`--resources ${join(dir, 'f.yaml')} is not a directory`);
  });

  test('the problem line site/quickstart.md shows is what an invalid edit of the example logs', async () => {
    const example = join(import.meta.dir, '..', '..', 'examples', 'standalone');
    for (const file of ['endpoints.yaml', 'gateway.yaml', 'route-policy.yaml'])
      await writeFile(join(dir, file), await Bun.file(join(example, file)).text());
    const first = await loadResourceDirectory(dir);
    const gateway = await Bun.file(join(dir, 'gateway.yaml')).text();
    await writeFile(join(dir, 'gateway.yaml'), gateway.replace('    - name: corp', '    - name: Corp'));
    const next = await loadResourceDirectory(dir, first);
    const line = formatProblem(next.problems[0]!);
    const quickstart = await Bun.file(join(import.meta.dir, '..', '..', 'site', 'quickstart.md')).text();
    expect(quickstart).toContain(`\n${line}\n`);
    expect(quickstart).toContain(`"message":"${next.resources.length} resources, 1 problem"`);
  });

  test('the shipped standalone example loads without problems', async () => {
    const loaded = await loadResourceDirectory(join(import.meta.dir, '..', '..', 'examples', 'standalone'));
    expect(loaded.problems).toEqual([]);
    expect(new Set(loaded.resources.map((r) => r.resource.kind))).toEqual(
      new Set(['TailscaleEndpoints', 'TailscaleGateway', 'TailscaleRoutePolicy']),
    );
  });
});
