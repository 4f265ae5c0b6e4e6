/**
 * The CRDs against a real kube-apiserver: they install, the examples are accepted, every rule of
 * src/testing/invalid-cases.ts rejects its object naming the field, defaults match standalone mode, and the
 * status subresource and printer columns work. A fake server would not run CEL or structural defaulting,
 * which is the point of this test.
 */

import { beforeAll, describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  API_VERSION,
  GROUP,
  KIND_DEFINITIONS,
  renderCrds,
  VERSION,
  validateResource,
} from '../../src/api/index.ts';
import { gateway, INVALID_CASES, proxyGroup } from '../../src/testing/invalid-cases.ts';
import { type ControlPlane, installCrds, sharedControlPlane } from '../harness/control-plane/index.ts';

type Json = Record<string, unknown>;
interface Status {
  kind?: string;
  code?: number;
  message?: string;
  details?: { causes?: { field?: string; message?: string; reason?: string }[] };
}

const examplesDir = join(import.meta.dir, '..', '..', 'examples');
const examples: { file: string; object: Json }[] = readdirSync(examplesDir, {
  recursive: true,
  encoding: 'utf8',
})
  .filter((entry) => entry.endsWith('.yaml'))
  .sort()
  .flatMap((file) =>
    parseAllDocuments(readFileSync(join(examplesDir, file), 'utf8')).map((doc) => ({
      file,
      object: ownName(doc.toJS() as Json),
    })),
  )
  // Gateway API and Envoy Gateway objects in the examples are for Envoy Gateway; this API server has
  // only our CRDs and the core kinds.
  .filter(({ object }) => !/^gateway\.(networking\.k8s|envoyproxy)\.io\//.test(String(object.apiVersion)));

let cp: ControlPlane;

/**
 * The API server is shared by every test file, and other harnesses create objects of the examples'
 * names (the proxy harness keeps a TailscaleTailnet `corp`): the examples are created here under a
 * name of their own, which no check reads.
 */
function ownName(object: Json): Json {
  const metadata = object['metadata'] as Json | undefined;
  if (metadata && typeof metadata['name'] === 'string') metadata['name'] = `${metadata['name']}-crds-test`;
  return object;
}

function meta(object: Json): { name: string; namespace?: string } {
  return object['metadata'] as { name: string; namespace?: string };
}

/** The collection URL of an object: one of ours, or a core/v1 object (the example Secret). */
function collectionPath(object: Json): string {
  const namespace = meta(object).namespace;
  if (object['apiVersion'] === 'v1')
    return `/api/v1/namespaces/${namespace}/${String(object['kind']).toLowerCase()}s`;
  const definition = KIND_DEFINITIONS.find((d) => d.kind === object['kind']);
  if (!definition) throw new Error(`no definition for ${String(object['kind'])}`);
  const scope = definition.scope === 'Namespaced' ? `/namespaces/${namespace}` : '';
  return `/apis/${GROUP}/${VERSION}${scope}/${definition.plural}`;
}

const objectPath = (object: Json) => `${collectionPath(object)}/${meta(object).name}`;

async function ensureNamespace(name: string): Promise<void> {
  const response = await cp.request('/api/v1/namespaces', {
    method: 'POST',
    body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
  });
  if (!response.ok && response.status !== 409) throw new Error(`namespace ${name}: ${await response.text()}`);
  await response.body?.cancel();
}

async function create(object: Json, dryRun = false): Promise<{ status: number; body: Json & Status }> {
  const response = await cp.request(collectionPath(object), {
    method: 'POST',
    body: object,
    ...(dryRun ? { query: { dryRun: 'All' } } : {}),
  });
  return { status: response.status, body: (await response.json()) as Json & Status };
}

async function remove(object: Json): Promise<void> {
  const response = await cp.request(objectPath(object), { method: 'DELETE' });
  await response.body?.cancel();
}

/** Whether a 422 Status names `field`, in its message or in a cause. */
function namesField(status: Status, field: string): boolean {
  return (
    (status.message ?? '').includes(field) ||
    (status.details?.causes ?? []).some(
      (cause) => cause.field === field || (cause.message ?? '').includes(field),
    )
  );
}

beforeAll(async () => {
  cp = await sharedControlPlane();
  await installCrds(cp, renderCrds());
  await ensureNamespace('tailscale-gateway');
}, 120_000);

describe('CRDs on a real API server', () => {
  test('all five CRDs are Established with our names', async () => {
    for (const crd of renderCrds()) {
      const response = await cp.request(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      const live = (await response.json()) as {
        status: { conditions: { type: string; status: string }[]; acceptedNames: { shortNames: string[] } };
      };
      expect(live.status.conditions.find((c) => c.type === 'Established')?.status).toBe('True');
      expect(live.status.conditions.find((c) => c.type === 'NamesAccepted')?.status).toBe('True');
      expect(live.status.acceptedNames.shortNames).toEqual(crd.spec.names.shortNames);
    }
  });

  test('every example is accepted by a dry-run create, with the same defaults as standalone mode', async () => {
    expect(examples.length).toBeGreaterThanOrEqual(10);
    for (const { file, object } of examples) {
      const { status, body } = await create(object, true);
      expect({ file, name: meta(object).name, status, message: body.message }).toEqual({
        file,
        name: meta(object).name,
        status: 201,
        message: undefined,
      });
      if (object['apiVersion'] !== API_VERSION) continue;
      const local = validateResource(object);
      if (!local.ok) throw new Error(`${file}: ${JSON.stringify(local.issues)}`);
      expect({ file, spec: body['spec'] }).toEqual({ file, spec: local.resource.spec });
    }
  });

  test('routeGeneration.egress.protocol is deprecated: kept when set, never defaulted', async () => {
    const withProtocol = gateway();
    const attachment = ((withProtocol['spec'] as Json)['tailnets'] as Json[])[0]!;
    attachment['routeGeneration'] = { egress: { protocol: 'HTTPS' } };
    const set = await create(withProtocol, true);
    expect(set.status).toBe(201);
    const storedEgress = (body: Json) =>
      (((body['spec'] as Json)['tailnets'] as Json[])[0]!['routeGeneration'] as Json)['egress'] as Json;
    expect(storedEgress(set.body)).toEqual({ pathPrefix: '/tailscale/{service}/', protocol: 'HTTPS' });
    const unset = await create(gateway(), true);
    expect(unset.status).toBe(201);
    expect(storedEgress(unset.body)).toEqual({ pathPrefix: '/tailscale/{service}/' });
  });

  describe('rejects each invalid object with 422 naming the field', () => {
    for (const invalid of INVALID_CASES) {
      test(invalid.name, async () => {
        let result: { status: number; body: Status };
        if (invalid.before) {
          const first = await create(invalid.before);
          expect(first.status).toBe(201);
          const update = structuredClone(invalid.object);
          (update['metadata'] as Json)['resourceVersion'] = (first.body['metadata'] as Json)[
            'resourceVersion'
          ];
          const response = await cp.request(objectPath(update), { method: 'PUT', body: update });
          result = { status: response.status, body: (await response.json()) as Status };
          await remove(invalid.before);
        } else {
          result = await create(invalid.object, true);
        }
        expect({ status: result.status, message: result.body.message }).toMatchObject({ status: 422 });
        if (!namesField(result.body, invalid.field)) {
          throw new Error(`expected ${invalid.field} in ${JSON.stringify(result.body)}`);
        }
      });
    }
  });

  test('unknown fields are rejected under strict field validation', async () => {
    const object = proxyGroup();
    (object['spec'] as Json)['replica'] = 3;
    const response = await cp.request(collectionPath(object), {
      method: 'POST',
      body: object,
      query: { dryRun: 'All', fieldValidation: 'Strict' },
    });
    const body = (await response.json()) as Status;
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(body.message).toContain('spec.replica');
  });

  test('the status subresource separates spec and status writes', async () => {
    const object = proxyGroup();
    (object['metadata'] as Json)['name'] = 'status-split';
    expect((await create(object)).status).toBe(201);
    try {
      const merge = 'application/merge-patch+json';
      const viaStatus = await cp.request(`${objectPath(object)}/status`, {
        method: 'PATCH',
        contentType: merge,
        body: { spec: { replicas: 5 }, status: { readyReplicas: 1 } },
      });
      expect(viaStatus.status).toBe(200);
      const afterStatus = (await viaStatus.json()) as { spec: Json; status: Json };
      expect(afterStatus.status['readyReplicas']).toBe(1);
      expect(afterStatus.spec['replicas']).toBe(2);

      const viaMain = await cp.request(objectPath(object), {
        method: 'PATCH',
        contentType: merge,
        body: { spec: { replicas: 3 }, status: { readyReplicas: 9 } },
      });
      expect(viaMain.status).toBe(200);
      const afterMain = (await viaMain.json()) as { spec: Json; status: Json };
      expect(afterMain.spec['replicas']).toBe(3);
      expect(afterMain.status['readyReplicas']).toBe(1);

      // The status subresource validates too: a status the schema forbids is refused.
      const badStatus = await cp.request(`${objectPath(object)}/status`, {
        method: 'PATCH',
        contentType: merge,
        body: { status: { readyReplicas: 11 } },
      });
      expect(badStatus.status).toBe(422);
      expect(((await badStatus.json()) as Status).message).toContain('status.readyReplicas');
    } finally {
      await remove(object);
    }
  });

  test('printer columns are served through the Table API', async () => {
    const created: Json[] = [];
    try {
      for (const { object } of examples.filter((e) => e.file.startsWith('kubernetes/'))) {
        const { status } = await create(object);
        expect(status).toBe(201);
        created.push(object);
      }
      for (const definition of KIND_DEFINITIONS) {
        const object = created.find((o) => o['kind'] === definition.kind)!;
        const url = new URL(cp.server + collectionPath(object));
        const response = await fetch(url, {
          headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
          tls: { ca: cp.ca, cert: cp.cert, key: cp.key },
        });
        expect(response.status).toBe(200);
        const table = (await response.json()) as {
          kind: string;
          columnDefinitions: { name: string }[];
          rows: { cells: unknown[] }[];
        };
        expect(table.kind).toBe('Table');
        expect(table.columnDefinitions.map((c) => c.name)).toEqual([
          'Name',
          ...definition.printerColumns.map((c) => c.name),
        ]);
        const row = table.rows.find((r) => r.cells[0] === meta(object).name);
        expect(row?.cells[0]).toBe(meta(object).name);
        if (definition.kind === 'TailscaleProxyGroup') {
          expect(row?.cells.slice(1, 4)).toEqual(['ingress', 'corp', 3]);
        }
      }
    } finally {
      for (const object of created) await remove(object);
    }
  });
});
