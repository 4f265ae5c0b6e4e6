/**
 * Building blocks shared by every kind of `gateway.tailscale.com/v1alpha1`.
 *
 * Limits (`maxLength`, `maxItems`) are on every string and list a CEL rule may walk, because the API
 * server refuses a CRD whose rules have an unbounded estimated cost; they are also sane bounds for
 * what a human writes.
 *
 * @module
 */

import * as v from 'valibot';
import { cel, k8s, listMap, listSet } from './extensions.ts';

export const GROUP = 'gateway.tailscale.com';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** RFC 1123 label: Service, port and endpoint names end up as parts of DNS names and object names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain: the rule for most Kubernetes object names. */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A Tailscale ACL tag as the control plane checks it (`tailcfg.CheckTag`). */
export const TAG = /^tag:[a-zA-Z][a-zA-Z0-9-]*$/;
/** Gateway API duration: what both Envoy and CEL's `duration()` understand. */
export const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
/** Kubernetes resource quantity (`500m`, `128Mi`, `1.5`). */
export const QUANTITY =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
/** Gateway API group: empty for the core group. */
export const GROUP_PATTERN = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Gateway API kind. */
export const KIND_PATTERN = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** A DNS label such as an endpoint or tailnet entry name. */
export const dnsLabel = (what: string) =>
  v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(63),
    v.regex(DNS_LABEL, `${what} must be a DNS label: lower-case letters, digits and "-"`),
  );

/** The name of another Kubernetes object. */
export const objectName = (what: string) =>
  v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(253),
    v.regex(DNS_SUBDOMAIN, `${what} must be a DNS subdomain: lower-case letters, digits, "-" and "."`),
  );

export const namespaceName = () => dnsLabel('namespace');

/** Tags given to auth keys and Tailscale Services; the OAuth client must own them in `tagOwners`. */
export const tags = (description: string) =>
  v.pipe(
    v.array(
      v.pipe(v.string(), v.maxLength(128), v.regex(TAG, 'a tag must look like tag:name (a letter first)')),
    ),
    v.minLength(1),
    v.maxLength(16),
    listSet(),
    v.description(description),
  );

/**
 * Parses a Gateway API duration to milliseconds. Exported because health checks and timeouts need
 * the number, and one parser keeps them consistent with validation.
 */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) throw new Error(`invalid duration ${JSON.stringify(text)}`);
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  for (const match of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(match[1]) * unit[match[2]!]!;
  return total;
}

export const duration = (description: string) =>
  v.pipe(
    v.string(),
    v.maxLength(32),
    v.regex(DURATION, 'must be a duration such as 500ms, 10s, 1m or 1h30m'),
    v.description(description),
  );

/** An integer in [min, max]. */
export const int = (min: number, max: number) =>
  v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));

export const port = () => int(1, 65535);

/** A resource quantity, int or string like the core API (`cpu: 1` and `cpu: "500m"`). */
export const quantity = v.pipe(
  v.union([v.pipe(v.number(), v.integer()), v.pipe(v.string(), v.regex(QUANTITY, 'must be a quantity'))]),
  k8s({ intOrString: true }),
);

/** Resource requests and limits of the proxy container; copied verbatim into the Pod. */
export const ResourceRequirements = v.pipe(
  v.strictObject({
    limits: v.optional(v.pipe(v.record(v.string(), quantity), v.description('Maximum resources.'))),
    requests: v.optional(v.pipe(v.record(v.string(), quantity), v.description('Guaranteed resources.'))),
  }),
  v.description('Compute resources of the proxy container, as in a Pod spec.'),
);

/**
 * A label key as core/v1 checks it: a name with an optional DNS-subdomain prefix (`example.com/pool`).
 * The 63-character bound of the name part is left to the API server (the pattern language of CRDs
 * has no lookahead); a longer one is refused when the StatefulSet is applied, and reported then.
 */
export const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
/** A label value: empty, or letters, digits, `-`, `_` and `.` between alphanumerics. */
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const labelKey = (what: string) =>
  v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(316),
    v.regex(LABEL_KEY, `${what} must be a label key such as example.com/name`),
  );

/** Node labels a Pod must run on (core/v1 `nodeSelector`), checked as the API server checks them. */
export const NodeSelector = v.pipe(
  v.record(
    v.string(),
    v.pipe(
      v.string(),
      v.maxLength(63),
      v.regex(LABEL_VALUE, 'a nodeSelector value must be a label value (at most 63 characters)'),
    ),
  ),
  v.maxEntries(32),
  cel(
    {
      rule: `self.all(k, k.matches('${LABEL_KEY.source.replaceAll('\\', '\\\\')}'))`,
      message: 'nodeSelector keys must be label keys such as example.com/name',
    },
    (self: Record<string, string>) => Object.keys(self).every((k) => LABEL_KEY.test(k)),
  ),
  v.description('Node labels the proxy pods must run on (core/v1 nodeSelector).'),
);

/** Mirrors core/v1 Toleration, so proxies can run on tainted nodes; invalid ones are refused up front. */
export const Toleration = v.pipe(
  v.strictObject({
    key: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(316),
        v.regex(
          new RegExp(`^$|${LABEL_KEY.source}`),
          'key must be a label key such as example.com/name, or empty to match every taint',
        ),
        v.description('Taint key; empty (with operator Exists) tolerates every taint.'),
      ),
    ),
    operator: v.optional(v.pipe(v.picklist(['Exists', 'Equal']), v.description('Equal when unset.'))),
    value: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(63),
        v.regex(LABEL_VALUE, 'value must be a label value (at most 63 characters)'),
        v.description('Taint value, with operator Equal.'),
      ),
    ),
    effect: v.optional(
      v.pipe(
        v.picklist(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
        v.description('Taint effect to match; every effect when unset.'),
      ),
    ),
    tolerationSeconds: v.optional(
      v.pipe(
        v.number(),
        v.integer(),
        v.description('With effect NoExecute: how long the pod stays bound after the taint appears.'),
      ),
    ),
  }),
  cel(
    {
      rule: "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
      message: 'value must be empty when operator is Exists',
      fieldPath: '.value',
    },
    (self) => self.operator !== 'Exists' || !self.value,
  ),
  cel(
    {
      rule: "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
      message: 'an empty key needs operator Exists (it tolerates every taint)',
      fieldPath: '.operator',
    },
    (self) => Boolean(self.key) || self.operator === 'Exists',
  ),
  cel(
    {
      rule: "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
      message: "effect must be 'NoExecute' when tolerationSeconds is set",
      fieldPath: '.effect',
    },
    (self) => self.tolerationSeconds === undefined || self.effect === 'NoExecute',
  ),
);

export const Tolerations = v.pipe(
  v.array(Toleration),
  v.maxLength(32),
  v.description('Taints the proxy pods tolerate (core/v1 tolerations).'),
);

/**
 * core/v1 Affinity, passed through untouched: re-declaring its deep schema would only duplicate the
 * Pod validation the API server performs when the StatefulSet is applied (a refusal is reported in
 * the object's conditions, `ApplyRejected`).
 */
export const Affinity = v.pipe(
  v.record(v.string(), v.unknown()),
  k8s({ preserveUnknownFields: true }),
  v.description('Pod affinity of the proxy pods (core/v1 Affinity), copied into the StatefulSet.'),
);

/** A PriorityClass by name, for proxies that must not be preempted (or must be, first). */
export const PriorityClassName = v.pipe(
  objectName('priorityClassName'),
  v.description('PriorityClass of the proxy pods (core/v1 priorityClassName).'),
);

/** core/v1 LabelSelector, passed through like Affinity. */
const LabelSelector = v.pipe(
  v.record(v.string(), v.unknown()),
  k8s({ preserveUnknownFields: true }),
  v.description("Pods counted for the spread (core/v1 LabelSelector); this proxy's own Pods when unset."),
);

/** Mirrors core/v1 TopologySpreadConstraint. */
export const TopologySpreadConstraint = v.pipe(
  v.strictObject({
    maxSkew: v.pipe(int(1, 1000), v.description('Most the pod count may differ between two domains.')),
    topologyKey: v.pipe(labelKey('topologyKey'), v.description('Node label whose values are the domains.')),
    whenUnsatisfiable: v.pipe(
      v.picklist(['DoNotSchedule', 'ScheduleAnyway']),
      v.description('DoNotSchedule keeps a pod pending; ScheduleAnyway only prefers the spread.'),
    ),
    labelSelector: v.optional(LabelSelector),
    matchLabelKeys: v.optional(
      v.pipe(
        v.array(labelKey('matchLabelKeys')),
        v.maxLength(16),
        listSet(),
        v.description('Pod label keys whose values narrow the pods counted.'),
      ),
    ),
    minDomains: v.optional(
      v.pipe(int(1, 1000), v.description('Fewest eligible domains, with DoNotSchedule.')),
    ),
    nodeAffinityPolicy: v.optional(v.picklist(['Honor', 'Ignore'])),
    nodeTaintsPolicy: v.optional(v.picklist(['Honor', 'Ignore'])),
  }),
  cel(
    {
      rule: "!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
      message: 'minDomains needs whenUnsatisfiable DoNotSchedule',
      fieldPath: '.minDomains',
    },
    (self) => self.minDomains === undefined || self.whenUnsatisfiable === 'DoNotSchedule',
  ),
);

export const TopologySpreadConstraints = v.pipe(
  v.array(TopologySpreadConstraint),
  v.maxLength(8),
  listMap('topologyKey', 'whenUnsatisfiable'),
  v.description(
    'How the proxy pods spread over zones or nodes (core/v1 topologySpreadConstraints); a constraint ' +
      "without labelSelector counts this proxy's own Pods.",
  ),
);

/** Container image reference; validated loosely because registries differ. */
export const image = () =>
  v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(512),
    v.regex(/^[^\s]+$/, 'image must not contain whitespace'),
    v.description('Proxy image; defaults to the operator-wide tailscale image.'),
  );

/** metav1.Condition, so `kubectl wait --for=condition=Ready` and generic tooling work. */
export const Condition = v.strictObject({
  type: v.pipe(
    v.string(),
    v.maxLength(316),
    v.regex(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
    ),
  ),
  status: v.picklist(['True', 'False', 'Unknown']),
  observedGeneration: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  lastTransitionTime: v.pipe(v.string(), v.isoTimestamp()),
  reason: v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(1024),
    v.regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/, 'reason must be CamelCase'),
  ),
  message: v.pipe(v.string(), v.maxLength(32768)),
});
export type Condition = v.InferOutput<typeof Condition>;

export const conditions = () =>
  v.optional(
    v.pipe(
      v.array(Condition),
      v.maxLength(16),
      listMap('type'),
      v.description('Latest observations of the object; `Ready` summarises them.'),
    ),
  );

/**
 * Gateway API LocalPolicyTargetReferenceWithSectionName: what a policy attaches to, always in the
 * policy's own namespace.
 */
export const LocalPolicyTargetReference = v.strictObject({
  group: v.pipe(v.string(), v.maxLength(253), v.regex(GROUP_PATTERN, 'group must be an API group')),
  kind: v.pipe(v.string(), v.minLength(1), v.maxLength(63), v.regex(KIND_PATTERN, 'kind must be a Kind')),
  name: objectName('name'),
  sectionName: v.optional(objectName('sectionName')),
});
export type LocalPolicyTargetReference = v.InferOutput<typeof LocalPolicyTargetReference>;

/** A reference by name to a cluster-scoped object such as a TailscaleTailnet. */
export const NameReference = (description: string) =>
  v.pipe(v.strictObject({ name: objectName('name') }), v.description(description));

/**
 * Kubernetes object metadata as standalone mode needs it. Loose, because the API server owns the
 * other fields and they must round-trip.
 */
export const ObjectMeta = v.looseObject({
  name: objectName('metadata.name'),
  namespace: v.optional(namespaceName()),
  labels: v.optional(v.record(v.string(), v.string())),
  annotations: v.optional(v.record(v.string(), v.string())),
  generation: v.optional(v.number()),
  resourceVersion: v.optional(v.string()),
  uid: v.optional(v.string()),
});
export type ObjectMeta = v.InferOutput<typeof ObjectMeta>;

/** How a kind is served; `crd.ts` turns this into a CustomResourceDefinition. */
export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: v.GenericSchema;
  status: v.GenericSchema;
  printerColumns: PrinterColumn[];
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** The columns every kind shows first and last. */
export const readyColumn: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Status of the Ready condition.',
};
export const ageColumn: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
};

/** Builds the valibot schema of a whole object of a kind. */
export function resourceSchema<K extends string, S extends v.GenericSchema, T extends v.GenericSchema>(
  kind: K,
  spec: S,
  status: T,
) {
  return v.strictObject({
    apiVersion: v.literal(API_VERSION),
    kind: v.literal(kind),
    metadata: ObjectMeta,
    spec,
    status: v.optional(status),
  });
}
