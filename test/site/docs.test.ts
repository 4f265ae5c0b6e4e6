/**
 * Keeps the docs site and the README honest:
 * - the generated pages (CRD field references, CLI, metrics) match what the source generates now;
 * - every flag, environment variable, kind, metric family and condition reason the binary has is on
 *   its page, and no flag is documented that the binary does not have;
 * - manifests in the docs are files from examples/ (which the tests apply), embedded, never copied;
 * - every npm script and every relative link the docs name exists.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import {
  findMetricFamilies,
  GENERATED_DIR,
  kindSlug,
  REPO_ROOT,
  staleDocs,
} from '../../scripts/docs-generate.ts';
import { KINDS, type TailscaleTailnet } from '../../src/api/index.ts';
import { type ConfigKey, ConfigSchema, describeSetting } from '../../src/config/schema.ts';
import { serveConfig } from '../../src/proxy/config.ts';
import {
  CONDITION_AUTHENTICATED,
  CONDITION_READY,
  desiredTailnetStatus,
  SCOPE_CONDITIONS,
  type TailnetObservation,
} from '../../src/resources/tailscale-tailnet/tailscale-tailnet-status.ts';
import type { ScopeCheck, ScopeProbe } from '../../src/tailscale/index.ts';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');
const settings = Object.keys(ConfigSchema.entries) as ConfigKey[];

/** The hand-written pages of the site (generated includes and build output excluded). */
const pages = readdirSync(join(REPO_ROOT, 'site'), { recursive: true, encoding: 'utf8' })
  .filter((path) => path.endsWith('.md') && !path.startsWith('generated/') && !path.startsWith('.vitepress/'))
  .map((path) => `site/${path}`)
  .sort();

/** A page with its `<!--@include: …-->` directives expanded, as VitePress renders it. */
function rendered(path: string): string {
  return read(path).replace(/<!--@include:\s*(\S+?)\s*-->/g, (_, target: string) =>
    rendered(relative(REPO_ROOT, join(REPO_ROOT, dirname(path), target))),
  );
}

test('the site has the pages the docs promise', () => {
  for (const page of [
    'site/index.md',
    'site/quickstart.md',
    'site/concepts.md',
    'site/envoy-gateway.md',
    'site/multi-cluster.md',
    'site/observability.md',
    'site/troubleshooting.md',
    'site/cli.md',
    'site/resources/index.md',
  ]) {
    expect(pages).toContain(page);
  }
});

test('generated docs are up to date (run bun scripts/docs-generate.ts)', async () => {
  expect(await staleDocs()).toEqual([]);
}, 30_000);

test('every include names an existing generated file, and every generated file is included', () => {
  const included = new Set<string>();
  for (const page of pages) {
    for (const [, target] of read(page).matchAll(/<!--@include:\s*(\S+?)\s*-->/g)) {
      const path = relative(REPO_ROOT, join(REPO_ROOT, dirname(page), target!));
      expect(existsSync(join(REPO_ROOT, path)), `${page} includes missing ${path}`).toBe(true);
      included.add(path);
    }
  }
  const generated = readdirSync(join(REPO_ROOT, GENERATED_DIR), { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.md'))
    .map((path) => `${GENERATED_DIR}/${path}`);
  expect(generated.filter((path) => !included.has(path))).toEqual([]);
});

describe('CLI page', () => {
  const text = rendered('site/cli.md');

  test.each(settings)('documents %s with its flag, variable and default', (key) => {
    const setting = describeSetting(key);
    const row = text.split('\n').find((line) => line.startsWith(`| \`${setting.flag}\``));
    expect(row, `${setting.flag} missing from the CLI page`).toBeDefined();
    expect(row).toContain(`\`${setting.env}\``);
    if (setting.default !== undefined) expect(row).toContain(`\`${String(setting.default)}\``);
    expect(row).toContain(setting.description.split(';')[0]!.replaceAll('|', '\\|'));
  });

  test('documents no flag the binary does not have', () => {
    const known = new Set(settings.map((key) => describeSetting(key).flag));
    const documented = [...text.matchAll(/^\| `(--[a-z-]+)`/gm)].map((m) => m[1]!);
    expect(documented.length).toBe(settings.length);
    expect(documented.filter((flag) => !known.has(flag))).toEqual([]);
  });
});

test('every --flag named anywhere in the docs is a flag of the binary or of another tool', () => {
  const binary = new Set(settings.map((key) => describeSetting(key).flag));
  // kubectl's, helm's, Envoy Gateway's, tailscale's and tailscaled's (a standalone host on the tailnet)
  // and bun's (its profilers, bun test's --timeout) flags in commands, npm run bench:node's,
  // bench:quickstart's and bench/operator-memory.ts's options, and the planned multi-cluster flags (that
  // page says they are planned).
  const others = new Set([
    '--heap-prof-md',
    '--cpu-prof-md',
    '--timeout',
    '--count',
    '--settle',
    '--env',
    '--binary',
    '--help',
    '--noEmit',
    '--server-side',
    '--config-path',
    '--local',
    '--install',
    '--create-namespace',
    '--set',
    '--operator-id',
    '--cluster-id',
    '--tun',
    '--accept-dns',
    '--service',
    '--tcp',
    '--derp-only',
  ]);
  const unknown: string[] = [];
  for (const path of [...pages, 'README.md']) {
    for (const [, flag] of read(path).matchAll(/(?<![\w-])(--[a-zA-Z][\w-]*[a-zA-Z])/g)) {
      if (!binary.has(flag!) && !others.has(flag!)) unknown.push(`${path}: ${flag}`);
    }
  }
  expect(unknown).toEqual([]);
  expect(read('site/multi-cluster.md')).toContain('Planned');
});

describe('custom resource pages', () => {
  const index = read('site/resources/index.md');
  const config = read('site/.vitepress/config.mts');

  test.each(KINDS)('%s has a page with the generated field reference, linked from the index', (kind) => {
    const page = `site/resources/${kindSlug(kind)}.md`;
    expect(pages).toContain(page);
    expect(read(page)).toContain(`<!--@include: ../generated/crds/${kindSlug(kind)}.md-->`);
    expect(rendered(page)).toContain(`| Kind | \`${kind}\` |`);
    expect(index).toContain(`(./${kindSlug(kind)}.md)`);
    expect(config).toContain(`link: '/resources/${kindSlug(kind)}'`);
  });

  test('the field reference shows descriptions, defaults, enums, patterns and CEL rules', () => {
    const endpoints = rendered('site/resources/tailscale-endpoints.md');
    expect(endpoints).toContain(
      '| `spec.endpoints[].protocol` | string |  | `"HTTP"` | One of `HTTP`, `HTTPS`',
    );
    expect(endpoints).toContain('Pattern `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`');
    expect(endpoints).toContain('Each item: rule `has(self.tailscaleFQDN) \\|\\| has(self.tailscaleIP)');
    expect(endpoints).toContain('MagicDNS name of the device or Tailscale Service');
  });
});

test('generated pages escape pipes only inside table rows (markdown-it shows `\\|` elsewhere as is)', () => {
  const escaped: string[] = [];
  for (const file of readdirSync(join(REPO_ROOT, GENERATED_DIR), { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.md')) continue;
    const lines = read(`${GENERATED_DIR}/${file}`).split('\n');
    let fenced = false;
    for (const line of lines) {
      if (line.startsWith('```')) fenced = !fenced;
      if (!fenced && !line.startsWith('|') && line.includes('\\|')) escaped.push(`${file}: ${line}`);
    }
  }
  expect(escaped).toEqual([]);
  expect(rendered('site/resources/tailscale-endpoints.md')).toContain(
    'Rule `has(self.discovery) || (has(self.endpoints) && size(self.endpoints) > 0)`',
  );
});

describe('observability page', () => {
  const text = rendered('site/observability.md');

  /** Metric names, found the plain way: `name: '…'` in the files that define metric families. */
  const grepped = (() => {
    const names = new Set<string>();
    for (const file of readdirSync(join(REPO_ROOT, 'src'), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue;
      const source = read(`src/${file}`);
      if (!/prom-client|\bfamily\(|scrapeGauge\(/.test(source)) continue;
      for (const [, name] of source.matchAll(/\bname: '([a-z][a-z0-9]*(?:_[a-z0-9]+)+)'/g)) names.add(name!);
    }
    return [...names].sort();
  })();

  test('the source defines metric families (the grep works)', () => {
    expect(grepped.length).toBeGreaterThanOrEqual(20);
    expect(grepped).toContain('tsgw_extension_hook_calls_total');
    expect(grepped).toContain('tsgw_tailscale_api_requests_total');
    expect(grepped).toContain('controller_runtime_reconcile_total');
  });

  test.each(grepped)('lists the metric %s', (name) => {
    expect(text).toContain(`| \`${name}\` |`);
  });

  test('the generator finds the same families as the grep, each with its type', () => {
    const families = findMetricFamilies();
    expect([...new Set(families.map((f) => f.name))].sort()).toEqual(grepped);
    for (const family of families) expect(family.help.length).toBeGreaterThan(0);
  });

  test('lists the prom-client process families', () => {
    expect(text).toContain('| `process_cpu_seconds_total` |');
    expect(text).toContain('| `process_resident_memory_bytes` |');
  });
});

describe('troubleshooting page', () => {
  const text = read('site/troubleshooting.md');
  const check = (status: ScopeCheck['status'], code?: ScopeCheck['code']): ScopeCheck =>
    code ? { status, code, message: 'x' } : { status };
  const tailnet: TailscaleTailnet = {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleTailnet',
    metadata: { name: 'corp', generation: 1 },
    spec: { tailnet: '-', oauthSecretRef: { name: 's', namespace: 'ns' }, tags: ['tag:k8s'] },
  } as TailscaleTailnet;

  /** Every (condition, reason) desiredTailnetStatus can produce, by running it on every kind of input. */
  const produced = (() => {
    const outcomes: ScopeCheck[] = [
      check('ok'),
      check('denied', 'Invalid'),
      check('error', 'Transient'),
      check('error', 'Unauthorized'),
      check('error', 'Invalid'),
      check('error', 'Internal'),
    ];
    const observations: TailnetObservation[] = [
      { credentials: 'secret-not-found', secret: 'ns/s' },
      { credentials: 'key-missing', secret: 'ns/s', key: 'client_id' },
    ];
    for (const devices of outcomes)
      for (const authKeys of outcomes)
        for (const services of outcomes) {
          const probe: ScopeProbe = { devices, authKeys, services };
          observations.push({ credentials: 'present', probe });
        }
    const pairs = new Set<string>();
    for (const observation of observations) {
      const { status } = desiredTailnetStatus(tailnet, observation, new Date(0));
      for (const condition of status.conditions ?? []) pairs.add(`${condition.type}/${condition.reason}`);
    }
    return [...pairs].sort();
  })();

  /**
   * Which condition each source file's reason literals end up on, named by the `## ` section of the
   * troubleshooting page that explains that condition. A reason must be explained under its own
   * condition: the same word can mean different things on two conditions (`TailnetNotReady`).
   */
  /** A file that sets two conditions names both sections; each of its reasons must be under one of them. */
  const REASON_SOURCES: Record<string, string | readonly string[]> = {
    'src/resources/tailscale-tailnet/tailscale-tailnet-status.ts': 'TailscaleTailnet conditions',
    // Ready/ProxiesReady of TailscaleEndpoints and TailscaleProxyGroup: the proxy sync's problems, the
    // status summary, and the proxyGroup membership checks.
    'src/proxy/sync.ts': 'TailscaleEndpoints and TailscaleProxyGroup conditions',
    'src/proxy/status.ts': 'TailscaleEndpoints and TailscaleProxyGroup conditions',
    'src/proxy/parents.ts': 'TailscaleEndpoints and TailscaleProxyGroup conditions',
    'src/resources/tailscale-endpoints/tailscale-endpoints-proxies.ts':
      'TailscaleEndpoints and TailscaleProxyGroup conditions',
    'src/resources/tailscale-proxy-group/tailscale-proxy-group-proxies.ts':
      'TailscaleEndpoints and TailscaleProxyGroup conditions',
    'src/resources/tailscale-gateway/tailscale-gateway-status.ts': 'TailscaleGateway conditions',
    'src/resources/tailscale-route-policy/tailscale-route-policy-status.ts':
      'TailscaleRoutePolicy conditions',
    'src/resources/tailscale-gateway/tailscale-endpoints-routes.ts': [
      'RouteReferences on TailscaleEndpoints',
      'ClustersConsistent on TailscaleEndpoints',
    ],
    'src/resources/tailscale-endpoints/tailscale-endpoints-discovery-status.ts':
      'DiscoverySynced on TailscaleEndpoints',
    // The services reconciler's own reasons, the mode-HTTP upstream's (a Pending entry takes its reason,
    // `pending(http.reason, …)`), and the coordinator's refusals (`describeRefusal`).
    'src/resources/tailscale-gateway/tailscale-gateway-services.ts': 'TailscaleServices on TailscaleGateway',
    'src/resources/tailscale-gateway/tailscale-gateway-upstream.ts': 'TailscaleServices on TailscaleGateway',
    'src/coordination/plan.ts': 'TailscaleServices on TailscaleGateway',
  };

  const headingsOf = (file: string): readonly string[] => [REASON_SOURCES[file] ?? []].flat();

  /**
   * Condition reason literals of one file: the quoted PascalCase words of the expression after
   * `reason:`, `reason =`, `problem(` or `pending(` (so `reason: a ? 'X' : 'Y'` and
   * `reason: 'X' | 'Y'` count), up to the next `,`, `;` or `}`.
   */
  const reasonLiterals = (source: string): string[] => {
    const reasons = new Set<string>();
    for (const [, expression] of source.matchAll(/(?:\breason(?::| =)|\b(?:problem|pending)\()([^,;}]*)/g))
      for (const [, reason] of expression!.matchAll(/'([A-Z][A-Za-z]+)'/g)) reasons.add(reason!);
    return [...reasons].sort();
  };

  /** Every non-test source file under the directories that set conditions, with its reason literals. */
  const sources = (() => {
    const found: { file: string; reasons: string[] }[] = [];
    for (const dir of ['src/resources', 'src/proxy', 'src/coordination']) {
      for (const file of readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })) {
        if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue;
        const reasons = reasonLiterals(read(`${dir}/${file}`));
        if (reasons.length > 0) found.push({ file: `${dir}/${file}`, reasons });
      }
    }
    return found;
  })();
  const literals = [...new Set(sources.flatMap((source) => source.reasons))].sort();

  /** The page's `## ` sections by heading, each with the reasons named in the Reason column of its tables. */
  const sections = (() => {
    const out = new Map<string, { text: string; tableReasons: Set<string> }>();
    for (const chunk of text.split(/^## /m).slice(1)) {
      const heading = chunk.slice(0, chunk.indexOf('\n')).trim();
      const tableReasons = new Set<string>();
      let column = -1;
      for (const line of chunk.split('\n')) {
        if (!line.startsWith('|')) {
          column = -1;
          continue;
        }
        const cells = line
          .split(/(?<!\\)\|/)
          .slice(1, -1)
          .map((c) => c.trim());
        if (column === -1) column = cells.indexOf('Reason');
        else if (column >= 0 && !/^-+$/.test(cells[0]!))
          for (const [, reason] of (cells[column] ?? '').matchAll(/`([A-Za-z]+)`/g))
            tableReasons.add(reason!);
      }
      out.set(heading, { text: chunk, tableReasons });
    }
    return out;
  })();

  test('the enumeration reaches every condition type and the Ready reasons built from scope conditions', () => {
    const types = new Set(produced.map((pair) => pair.split('/')[0]));
    expect([...types].sort()).toEqual(
      [CONDITION_READY, CONDITION_AUTHENTICATED, ...Object.values(SCOPE_CONDITIONS)].sort(),
    );
    expect(produced).toContain('Ready/ServicesAccessDenied');
    expect(produced).toContain('Authenticated/APIUnreachable');
  });

  test('the reason grep finds the literals (ternaries, unions and pending() included)', () => {
    expect(literals.length).toBeGreaterThanOrEqual(40);
    for (const reason of [
      'ProxiesStarting',
      'TailnetNotReady',
      'IdentityPending',
      'APIUnreachable',
      'NotManaged',
    ])
      expect(literals).toContain(reason);
    expect(reasonLiterals("reason: 'Aa' | 'Bb'; message")).toEqual(['Aa', 'Bb']);
    expect(reasonLiterals("pending(\n ok() ? 'Aa' : 'Bb',\n 'Cc')")).toEqual(['Aa', 'Bb']);
  });

  test('every source file that sets condition reasons says which condition they explain', () => {
    expect(sources.map((source) => source.file).filter((file) => !(file in REASON_SOURCES))).toEqual([]);
    for (const file of Object.keys(REASON_SOURCES)) {
      expect(existsSync(join(REPO_ROOT, file)), file).toBe(true);
      for (const heading of headingsOf(file))
        expect([...sections.keys()], `${file}: no section "## ${heading}"`).toContain(heading);
    }
  });

  test.each([...Object.values(SCOPE_CONDITIONS), CONDITION_READY, CONDITION_AUTHENTICATED])(
    'has a section for the condition %s',
    (type) => {
      expect(text).toMatch(new RegExp(`^### .*\\b${type}\\b`, 'm'));
    },
  );

  test('explains every TailscaleTailnet reason under the condition that has it', () => {
    const tailnet = sections.get('TailscaleTailnet conditions')!.text;
    const subsections = new Map(
      tailnet
        .split(/^### /m)
        .slice(1)
        .map((chunk) => [chunk.slice(0, chunk.indexOf('\n')), chunk] as const),
    );
    const misplaced = produced.filter((pair) => {
      const [type, reason] = pair.split('/') as [string, string];
      const sub = [...subsections].find(([heading]) => new RegExp(`\\b${type}\\b`).test(heading))?.[1];
      return !sub?.includes(`\`${reason}\``);
    });
    expect(misplaced).toEqual([]);
  });

  test('explains every reason under the condition the code sets it on', () => {
    const missing: string[] = [];
    for (const { file, reasons } of sources) {
      const headings = headingsOf(file);
      for (const reason of reasons)
        if (!headings.some((heading) => sections.get(heading)?.text.includes(`\`${reason}\``)))
          missing.push(`${reason} (${file}) under "## ${headings.join('" or "## ')}"`);
    }
    expect(missing).toEqual([]);
  });

  test("lists no reason in a condition's table that the code does not set on that condition", () => {
    const extra: string[] = [];
    for (const heading of new Set(Object.values(REASON_SOURCES).flat())) {
      const set = new Set(
        sources
          .filter((source) => headingsOf(source.file).includes(heading))
          .flatMap((source) => source.reasons),
      );
      if (heading === 'TailscaleTailnet conditions')
        for (const pair of produced) set.add(pair.split('/')[1]!);
      for (const reason of sections.get(heading)?.tableReasons ?? [])
        if (!set.has(reason)) extra.push(`"## ${heading}" lists ${reason}`);
    }
    expect(extra).toEqual([]);
  });
});

describe('examples', () => {
  const exampleFiles = readdirSync(join(REPO_ROOT, 'examples'), { recursive: true, encoding: 'utf8' })
    .filter((path) => /\.ya?ml$/.test(path))
    .map((path) => `examples/${path}`)
    .sort();

  test('no page holds a hand-copied manifest: manifests are embedded from examples/', () => {
    const copied: string[] = [];
    for (const page of pages) {
      for (const [, body] of read(page).matchAll(/^```ya?ml[^\n]*\n([\s\S]*?)^```/gm)) {
        if (/^\s*(apiVersion|kind):/m.test(body!)) copied.push(page);
      }
    }
    expect(copied).toEqual([]);
  });

  test('every embedded file is an example the tests load and apply', () => {
    const embedded = new Set<string>();
    // Besides examples/, the kind loop's Envoy Gateway values, which test/chart*.test.ts and the
    // end-to-end test with the real Envoy Gateway read.
    const testSources = readdirSync(join(REPO_ROOT, 'test'), { recursive: true, encoding: 'utf8' })
      .filter((path) => path.endsWith('.ts'))
      .map((path) => read(`test/${path}`))
      .join('\n');
    for (const page of pages) {
      for (const [, target] of read(page).matchAll(/^<<<\s+(\S+)/gm)) {
        const path = relative(REPO_ROOT, join(REPO_ROOT, dirname(page), target!));
        if (path.startsWith('kind/')) {
          expect(existsSync(join(REPO_ROOT, path)), `${page} embeds ${path}`).toBe(true);
          expect(testSources, `no test reads ${path}, embedded in ${page}`).toContain(path);
          continue;
        }
        expect(exampleFiles, `${page} embeds ${path}`).toContain(path);
        embedded.add(path);
      }
    }
    // src/api/validate.test.ts validates every YAML file under examples/; test/apiserver/crds.test.ts applies
    // them to a real kube-apiserver. Every example is shown somewhere in the docs.
    expect(exampleFiles.filter((path) => !embedded.has(path))).toEqual([]);
    expect(read('src/api/validate.test.ts')).toContain('readdirSync(examplesDir, { recursive: true');
  });
});

test('the docs say whether run starts the proxy controllers, as src/operator/operator.ts does', () => {
  const wired = read('src/operator/operator.ts').includes('setupTailscaleEndpointsProxies');
  const saysNotWired = pages.filter((page) => /`run` does not start/.test(read(page)));
  if (wired) expect(saysNotWired, 'run starts the proxy controllers now: update these pages').toEqual([]);
  else expect(saysNotWired.length).toBeGreaterThanOrEqual(3);
});

test('the docs say caller identity arrives only through mode-HTTP published services, as the serve config does', () => {
  // Mode HTTP: tailscale serve's HTTP proxy (a Web handler), which sets Tailscale-User-* for untagged
  // callers. Everything else the proxies carry is forwarded as TCP and has no caller headers.
  expect(read('src/proxy/service-hosting.ts')).toMatch(/Handlers: \{ '\/': \{ Proxy:/);
  // A TailscaleEndpoints' own ingress proxy forwards TCP only, whatever its endpoints' protocols.
  const endpointServe = serveConfig([
    { endpoint: 'web', port: 443, target: 'web.default.svc.cluster.local:443' },
    { endpoint: 'api', port: 80, target: 'api.default.svc.cluster.local:80' },
  ]);
  expect(Object.values(endpointServe.TCP).every((handler) => 'TCPForward' in handler)).toBe(true);
  expect(endpointServe).not.toHaveProperty('Web');
  const policyPages = [
    'site/resources/tailscale-route-policy.md',
    'site/concepts.md',
    'site/troubleshooting.md',
  ];
  const wrong: string[] = [];
  for (const page of policyPages) {
    const text = read(page).replace(/\s+/g, ' ');
    if (!/Tailscale-User-Login/.test(text))
      wrong.push(`${page}: does not name the Tailscale-User-Login header`);
    if (!/mode[- ]HTTP/.test(text))
      wrong.push(`${page}: does not say caller matches need a mode-HTTP service`);
    if (!/tagged/.test(text)) wrong.push(`${page}: does not say tagged callers carry no user`);
    // The claim that no ingress proxy sets the headers, true before mode HTTP existed.
    for (const [claim] of text.matchAll(
      /today's [^.]*ingress proxies[^.]*(?:set none|set no such header)|caller match(?:es)? cannot work/g,
    ))
      wrong.push(`${page}: "${claim}"`);
  }
  expect(wrong).toEqual([]);
});

test('every npm script the docs and README name exists', () => {
  const scripts = Object.keys(JSON.parse(read('package.json')).scripts as Record<string, string>);
  const missing: string[] = [];
  for (const path of [...pages, 'README.md']) {
    for (const [, name] of read(path).matchAll(/\bnpm run ([a-z][\w:-]*)/g)) {
      if (!scripts.includes(name!)) missing.push(`${path}: npm run ${name}`);
    }
  }
  expect(missing).toEqual([]);
});

test('relative links in the README and the pages point at files that exist', () => {
  const broken: string[] = [];
  for (const path of [...pages, 'README.md']) {
    const prose = read(path)
      .replace(/^```[\s\S]*?^```/gm, '')
      .replace(/`[^`\n]*`/g, '');
    for (const [, target] of prose.matchAll(/\]\((?!https?:|#|mailto:)([^)\s#]+)(#[^)\s]*)?\)/g)) {
      const resolved = target!.startsWith('/')
        ? join(REPO_ROOT, 'site', target!)
        : join(REPO_ROOT, dirname(path), target!);
      if (!existsSync(resolved)) broken.push(`${path}: ${target}`);
    }
  }
  expect(broken).toEqual([]);
});

describe('development page: where things live', () => {
  const page = read('site/development.md');
  const between = (from: string, to: string) => page.slice(page.indexOf(from), page.indexOf(to));
  const named = (section: string, root: string) =>
    [...section.matchAll(new RegExp(`\`(${root}/[^\`]*)\``, 'g'))].map((match) => match[1]!);
  const folders = (dir: string) =>
    readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => `${dir}/${entry.name}/`);
  const src = named(between('### src/', '### Tests'), 'src');
  const tests = named(between('### Tests', '### Everything else'), 'test');

  test('every path the layout tables name exists', () => {
    const gone = [...src, ...tests].filter(
      (path) => !path.includes('<') && !existsSync(join(REPO_ROOT, path)),
    );
    expect(gone).toEqual([]);
  });

  test('the src/ table names every folder of src/, the extension parts and every resource folder', () => {
    // extension/ and resources/ are named by their parts (and resources/ by its shared files).
    const expected = [...folders('src'), ...folders('src/extension')].filter(
      (folder) => folder !== 'src/resources/' && folder !== 'src/extension/',
    );
    expect(expected.filter((folder) => !src.includes(folder))).toEqual([]);
    const resourceRow = page.split('\n').find((line) => line.startsWith('| `src/resources/<kind>/`')) ?? '';
    const kinds = folders('src/resources').map((folder) => folder.split('/')[2]!);
    expect(kinds.filter((kind) => !resourceRow.includes(`\`${kind}\``))).toEqual([]);
  });

  test('the tests table names every folder of test/', () => {
    const expected = folders('test').filter((folder) => folder !== 'test/harness/');
    expect(expected.filter((folder) => !tests.includes(folder))).toEqual([]);
  });
});

describe('README', () => {
  const text = read('README.md');

  test('keeps the two fresh-machine commands', () => {
    expect(text).toContain('npm ci && npm start');
    expect(text).toContain('npm test');
  });

  test('points to every page of the site (the resource pages through their index)', () => {
    for (const page of pages.filter((p) => !/^site\/resources\/(?!index)/.test(p)))
      expect(text, `README does not link ${page}`).toContain(`](${page})`);
  });

  test('stays short', () => {
    expect(text.split('\n').length).toBeLessThan(60);
  });
});
