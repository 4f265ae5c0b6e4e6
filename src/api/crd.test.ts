import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { crdAsYaml, crdFileName, crdsAsYaml, renderCrds } from './crd.ts';

const root = join(import.meta.dir, '..', '..');

type Node = Record<string, unknown>;

/** Visits every schema node with its path. */
function walk(node: Node, path: string, visit: (node: Node, path: string) => void): void {
  visit(node, path);
  for (const [key, child] of Object.entries((node['properties'] ?? {}) as Record<string, Node>)) {
    walk(child, `${path}.${key}`, visit);
  }
  if (typeof node['items'] === 'object') walk(node['items'] as Node, `${path}[*]`, visit);
  if (typeof node['additionalProperties'] === 'object')
    walk(node['additionalProperties'] as Node, `${path}.*`, visit);
}

const schemaOf = (crd: ReturnType<typeof renderCrds>[number]) => crd.spec.versions[0]!.schema.openAPIV3Schema;

describe('renderCrds', () => {
  const crds = renderCrds();

  test('renders the five kinds with status subresource, categories and short names', () => {
    expect(crds.map((crd) => crd.spec.names.kind)).toEqual([
      'TailscaleTailnet',
      'TailscaleEndpoints',
      'TailscaleGateway',
      'TailscaleRoutePolicy',
      'TailscaleProxyGroup',
    ]);
    expect(crds.map((crd) => crd.spec.names.shortNames[0])).toEqual(['tstn', 'tse', 'tsgw', 'tsrp', 'tspg']);
    for (const crd of crds) {
      expect(crd.spec.names.categories).toEqual(['tailscale-gateway']);
      expect(crd.spec.versions[0]!.subresources).toEqual({ status: {} });
      expect(crd.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toContain('Ready');
    }
    expect(crds[0]!.spec.scope).toBe('Cluster');
  });

  test('emits structural schemas: typed nodes, no $ref, no additionalProperties: false', () => {
    for (const crd of crds) {
      walk(schemaOf(crd) as Node, crd.spec.names.kind, (node, path) => {
        const intOrString = node['x-kubernetes-int-or-string'] === true;
        if (!intOrString) expect({ path, type: typeof node['type'] }).toEqual({ path, type: 'string' });
        expect(node['$ref']).toBeUndefined();
        expect(node['additionalProperties']).not.toBe(false);
        expect(node['oneOf']).toBeUndefined();
        if (node['anyOf'] !== undefined) expect(intOrString).toBe(true);
        if (node['properties'] !== undefined) expect(node['additionalProperties']).toBeUndefined();
      });
    }
  });

  test('bounds every list and string a CEL rule walks', () => {
    for (const crd of crds) {
      walk(schemaOf(crd) as Node, crd.spec.names.kind, (node, path) => {
        if (node['x-kubernetes-validations'] === undefined) return;
        walk(node, path, (inner, innerPath) => {
          if (inner['type'] === 'array')
            expect({ innerPath, max: typeof inner['maxItems'] }).toEqual({ innerPath, max: 'number' });
          if (inner['type'] === 'string' && inner['enum'] === undefined) {
            expect({ innerPath, max: typeof inner['maxLength'] }).toEqual({ innerPath, max: 'number' });
          }
        });
      });
    }
  });

  test('carries CEL rules with messages and field paths', () => {
    const policy = JSON.stringify(schemaOf(crds[3]!));
    expect(policy).toContain("(self.type == 'Redirect') == has(self.redirect)");
    expect(policy).toContain('"fieldPath":".redirect"');
    const proxyGroup = schemaOf(crds[4]!) as Node;
    const type = (
      (proxyGroup['properties'] as Record<string, Node>)['spec']!['properties'] as Record<string, Node>
    )['type']!;
    expect(type['x-kubernetes-validations']).toEqual([
      { rule: 'self == oldSelf', message: 'type is immutable; create a new TailscaleProxyGroup instead' },
    ]);
  });

  test('crds/ is up to date (run `bun scripts/generate-crds.ts` if this fails)', async () => {
    for (const crd of crds) {
      const onDisk = await Bun.file(join(root, crdFileName(crd))).text();
      expect(onDisk).toBe(crdAsYaml(crd));
    }
  });

  test('crdsAsYaml is a multi-document stream of the same objects', () => {
    const documents = parseAllDocuments(crdsAsYaml()).map((doc) => doc.toJS());
    expect(documents).toEqual(JSON.parse(JSON.stringify(crds)));
  });
});
