/**
 * The operator's configuration: one valibot schema, parsed once at start-up from flags and `TSGW_*`
 * environment variables. Each entry carries its own default and description, so `--help`, the README
 * table and validation can never disagree with what the binary does.
 *
 * @module
 */

import * as v from 'valibot';
import { parseListenAddress } from '../http/address.ts';
import { DEFAULT_CLUSTER_DOMAIN } from '../model/egress-target.ts';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

const listenAddress = (fallback: string, description: string) =>
  v.pipe(
    v.optional(v.string(), fallback),
    v.trim(),
    v.check((value) => {
      try {
        parseListenAddress(value);
        return true;
      } catch {
        return false;
      }
    }, 'expected host:port with a port from 0 to 65535 (e.g. 0.0.0.0:5005 or [::]:5005)'),
    v.description(description),
  );

const durationSeconds = (fallback: number, description: string) =>
  v.pipe(
    v.optional(v.union([v.number(), v.string()]), fallback),
    v.transform((value) => (typeof value === 'number' ? value : Number(value))),
    v.number('expected a number of seconds'),
    v.check(
      (value) => Number.isFinite(value) && value > 0 && value <= 3600,
      'expected seconds above 0 and at most 3600',
    ),
    v.description(description),
  );

const filePath = (description: string) =>
  v.pipe(
    v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty('expected a file path'))),
    v.description(description),
  );

const identifier = (description: string) =>
  v.pipe(
    v.optional(
      v.pipe(
        v.string(),
        v.trim(),
        v.regex(
          /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/,
          'expected 1 to 63 letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
        ),
      ),
    ),
    v.description(description),
  );

const longDurationSeconds = (fallback: number, description: string) =>
  v.pipe(
    v.optional(v.union([v.number(), v.string()]), fallback),
    v.transform((value) => (typeof value === 'number' ? value : Number(value))),
    v.check(
      (value) => Number.isInteger(value) && value >= 1 && value <= 86_400,
      'expected whole seconds between 1 and 86400',
    ),
    v.description(description),
  );

/** 256 MiB: Envoy Gateway's translate hooks carry whole xDS resource lists. */
const DEFAULT_GRPC_MAX_MESSAGE_BYTES = 268_435_456;

const settings = v.object({
  grpcAddr: listenAddress('0.0.0.0:5005', 'Listen address of the Envoy Gateway extension server (gRPC).'),
  grpcTlsCert: filePath(
    'PEM certificate (chain) of the extension server; with --grpc-tls-key it serves TLS instead of cleartext h2c. Re-read when the file changes.',
  ),
  grpcTlsKey: filePath('PEM private key for --grpc-tls-cert.'),
  grpcClientCa: filePath(
    'PEM CA bundle; when set, Envoy Gateway must present a client certificate it signed (mTLS). Needs --grpc-tls-cert.',
  ),
  grpcMaxMessageBytes: v.pipe(
    v.optional(v.union([v.number(), v.string()]), DEFAULT_GRPC_MAX_MESSAGE_BYTES),
    v.transform((value) => (typeof value === 'number' ? value : Number(value))),
    v.check(
      (value) => Number.isInteger(value) && value >= 1 && value <= 0xffffffff,
      'expected a whole number of bytes between 1 and 4294967295',
    ),
    v.description(
      "Largest gRPC request or response message in bytes; larger ones fail with RESOURCE_EXHAUSTED. Keep it at least Envoy Gateway's extensionManager.maxMessageSize.",
    ),
  ),
  grpcInflightBytes: v.pipe(
    v.optional(v.union([v.number(), v.string()]), 33_554_432),
    v.transform((value) => (typeof value === 'number' ? value : Number(value))),
    v.check(
      // Twice the largest message: a call holds twice its request, and one larger than the budget runs alone.
      (value) => Number.isInteger(value) && value >= 1 && value <= 8_589_934_590,
      'expected a whole number of bytes between 1 and 8589934590',
    ),
    v.description(
      'Bytes that large extension hook calls (requests over 64 KiB, e.g. PostTranslateModify) may hold at once, counted as twice each request; further ones wait, held back by HTTP/2 flow control, and one larger than this runs alone. Small calls never wait. See the memory bound in the Envoy Gateway docs.',
    ),
  ),
  grpcRequestTimeout: durationSeconds(
    30,
    'Deadline in seconds for one extension hook call; Envoy Gateway sends none. Longer client deadlines are shortened to it.',
  ),
  httpAddr: listenAddress('0.0.0.0:8080', 'Listen address of the HTTP surface: /metrics, /healthz, /readyz.'),
  logLevel: v.pipe(
    v.optional(v.picklist(LOG_LEVELS, `expected one of ${LOG_LEVELS.join(', ')}`), 'info'),
    v.description(`Minimum log level: ${LOG_LEVELS.join(', ')}.`),
  ),
  logFormat: v.pipe(
    v.optional(v.picklist(['json', 'text'], 'expected json or text'), 'json'),
    v.description('Log format: json (one object per line, for collectors) or text (for people).'),
  ),
  kubeconfig: v.pipe(
    v.optional(v.pipe(v.string(), v.nonEmpty('expected a path'))),
    v.description(
      'Path to a kubeconfig. Default: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config.',
    ),
  ),
  resources: v.pipe(
    v.optional(v.pipe(v.string(), v.nonEmpty('expected a directory'))),
    v.description('Directory of YAML resource files served in standalone mode.'),
  ),
  envoyGatewayResources: v.pipe(
    v.optional(v.pipe(v.string(), v.nonEmpty('expected a directory'))),
    v.description(
      "Standalone mode: directory Envoy Gateway's file provider reads, written from --resources (the kinds Envoy Gateway loads, and a revision annotation on joined Gateways so edits re-translate). Must lie outside --resources.",
    ),
  ),
  namespace: v.pipe(
    v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a namespace name (a DNS label)'),
        v.maxLength(63, 'expected at most 63 characters'),
      ),
    ),
    v.description(
      "The operator's own namespace, where its leader-election Lease lives. Default: $POD_NAMESPACE, then the service account's namespace, then tailscale-gateway.",
    ),
  ),
  leaderElection: v.pipe(
    v.optional(v.picklist(['true', 'false'], 'expected true or false'), 'true'),
    v.transform((value) => value === 'true'),
    v.description(
      'Elect one replica to run the reconcilers (a Lease); every replica serves the extension hooks either way.',
    ),
  ),
  leaseDuration: durationSeconds(
    15,
    'Seconds a leader-election Lease is valid without renewal; the renew deadline is 2/3 of it, the retry period 2/15.',
  ),
  tailscaleApiUrl: v.pipe(
    v.optional(
      v.pipe(v.string(), v.url('expected a URL such as https://api.tailscale.com')),
      'https://api.tailscale.com',
    ),
    v.description(
      'Base URL of the Tailscale control-plane API (change it for a self-hosted control server).',
    ),
  ),
  clusterDomain: v.pipe(
    v.optional(
      v.pipe(v.string(), v.regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'expected a DNS domain')),
      DEFAULT_CLUSTER_DOMAIN,
    ),
    v.description("The cluster's DNS domain, used in the addresses of the proxy Services."),
  ),
  operatorId: identifier(
    "This operator's id on shared Tailscale Services (its consumer entry and owner reference). Default: persisted in the ConfigMap tailscale-gateway-identity in the operator namespace, created once with a random tsgw-… id.",
  ),
  clusterId: identifier(
    "This cluster's id, recorded with the operator's consumer entry on shared Tailscale Services. Default: persisted in the same ConfigMap, taken once from the kube-system namespace UID.",
  ),
  serviceStaleAfter: longDurationSeconds(
    1800,
    "Seconds after which another operator's consumer entry on a shared Tailscale Service, not refreshed since, is swept; live operators refresh theirs every third of it.",
  ),
  serviceReverifyMin: longDurationSeconds(
    300,
    'Shortest wait in seconds before a changed Tailscale Service is read again to repair a racing overwrite; the wait is random between this and --service-reverify-max.',
  ),
  serviceReverifyMax: longDurationSeconds(
    600,
    'Longest wait in seconds before a changed Tailscale Service is read again (see --service-reverify-min).',
  ),
  shutdownTimeout: durationSeconds(
    25,
    'Hard deadline in seconds for a graceful shutdown; keep it below terminationGracePeriodSeconds.',
  ),
  shutdownDelay: v.pipe(
    v.optional(v.union([v.number(), v.string()]), 0),
    v.transform((value) => (typeof value === 'number' ? value : Number(value))),
    v.check(
      (value) => Number.isFinite(value) && value >= 0 && value <= 600,
      'expected seconds between 0 and 600',
    ),
    v.description(
      'Seconds to keep serving after /readyz turns 503 on SIGTERM, so load balancers stop sending traffic first.',
    ),
  ),
});

/** Every setting, keyed by its camelCase name; the flag is its kebab-case form. */
export const ConfigSchema = settings;

export type Config = v.InferOutput<typeof ConfigSchema>;
export type ConfigKey = keyof Config;

/**
 * A rule tying settings together, checked after each has parsed alone. Kept out of the valibot schema
 * so the message can name every setting involved with its value and where it came from (a flag, a
 * variable, the default): a cross-setting problem has no single "invalid value" to quote.
 */
export interface ConfigRule {
  /** The settings the rule relates; it applies to a command accepting all of them. */
  keys: readonly ConfigKey[];
  holds(config: Config): boolean;
  /** `name(key)` is the setting as the user gave it, e.g. `--shutdown-delay 30` or `--x 600 (the default)`. */
  message(name: (key: ConfigKey) => string): string;
  /** The setting to fix, reported as the error's field. Default: the first of `keys` the user set. */
  field?: ConfigKey;
}

export const CONFIG_RULES: readonly ConfigRule[] = [
  {
    keys: ['grpcTlsCert', 'grpcTlsKey'],
    holds: (config) => config.grpcTlsCert === undefined || config.grpcTlsKey !== undefined,
    message: (name) => `${name('grpcTlsCert')} needs --grpc-tls-key, which is not set`,
    field: 'grpcTlsKey',
  },
  {
    keys: ['grpcTlsKey', 'grpcTlsCert'],
    holds: (config) => config.grpcTlsKey === undefined || config.grpcTlsCert !== undefined,
    message: (name) => `${name('grpcTlsKey')} needs --grpc-tls-cert, which is not set`,
    field: 'grpcTlsCert',
  },
  {
    keys: ['grpcClientCa', 'grpcTlsCert'],
    holds: (config) => config.grpcClientCa === undefined || config.grpcTlsCert !== undefined,
    message: (name) =>
      `${name('grpcClientCa')} needs --grpc-tls-cert and --grpc-tls-key (mTLS is TLS with client certificates)`,
    field: 'grpcClientCa',
  },
  {
    keys: ['serviceReverifyMin', 'serviceReverifyMax'],
    holds: (config) => config.serviceReverifyMin <= config.serviceReverifyMax,
    message: (name) => `${name('serviceReverifyMin')} must not exceed ${name('serviceReverifyMax')}`,
  },
  {
    // The shutdown deadline starts at the signal, so a delay as long as it always ends in "deadline passed".
    keys: ['shutdownDelay', 'shutdownTimeout'],
    holds: (config) => config.shutdownDelay < config.shutdownTimeout,
    message: (name) =>
      `${name('shutdownDelay')} must be less than ${name('shutdownTimeout')}: the deadline includes the delay`,
  },
];

/** `grpcAddr` → `--grpc-addr`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `grpcAddr` → `TSGW_GRPC_ADDR`. */
export const envName = (key: string): string => `TSGW_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Human-readable documentation of one setting, for `--help` and the docs. */
export function describeSetting(key: ConfigKey): {
  flag: string;
  env: string;
  description: string;
  default?: unknown;
} {
  const schema = ConfigSchema.entries[key];
  const fallback = v.getDefault(schema as v.GenericSchema);
  return {
    flag: flagName(key),
    env: envName(key),
    description: v.getDescription(schema) ?? '',
    ...(fallback === undefined ? {} : { default: fallback }),
  };
}
