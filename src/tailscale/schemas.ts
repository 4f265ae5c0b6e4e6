/**
 * Response shapes, validated at the edge. Only fields the operator reads are required, so additive API
 * changes pass and a renamed or retyped field fails with a message naming it, instead of an `undefined`
 * surfacing three modules later.
 *
 * @module
 */

import * as v from 'valibot';
import { OperatorError } from '../errors.ts';

export const TokenResponse = v.object({
  access_token: v.pipe(v.string(), v.minLength(1)),
  expires_in: v.pipe(v.number(), v.minValue(1)),
});

const KeyCapabilities = v.looseObject({
  devices: v.optional(
    v.looseObject({
      create: v.optional(
        v.looseObject({
          reusable: v.optional(v.boolean()),
          ephemeral: v.optional(v.boolean()),
          preauthorized: v.optional(v.boolean()),
          tags: v.optional(v.array(v.string())),
        }),
      ),
    }),
  ),
});

const keyFields = {
  id: v.string(),
  created: v.optional(v.string()),
  expires: v.optional(v.string()),
  revoked: v.optional(v.string()),
  invalid: v.optional(v.boolean()),
  description: v.optional(v.string()),
  capabilities: v.optional(KeyCapabilities),
};

/** A key as `GET` returns it: never with the secret. */
export const AuthKeyInfo = v.object(keyFields);
/** A freshly created key: the only answer that carries the secret, so it must be there. */
export const CreatedAuthKey = v.object({ ...keyFields, key: v.pipe(v.string(), v.minLength(1)) });
export const AuthKeyList = v.object({ keys: v.array(AuthKeyInfo) });

export const Device = v.object({
  id: v.string(),
  nodeId: v.string(),
  name: v.string(),
  hostname: v.string(),
  addresses: v.nullish(v.array(v.string()), []),
  tags: v.nullish(v.array(v.string()), []),
  authorized: v.optional(v.boolean()),
  isEphemeral: v.optional(v.boolean()),
  connectedToControl: v.optional(v.boolean()),
  lastSeen: v.optional(v.string()),
  created: v.optional(v.string()),
  os: v.optional(v.string()),
  enabledRoutes: v.optional(v.array(v.string())),
  advertisedRoutes: v.optional(v.array(v.string())),
});
export const DeviceList = v.object({ devices: v.array(Device) });

/**
 * Loose, not strict: `PUT` replaces the whole service, so fields this client does not model (a newer
 * `displayName`, say) must survive a read-modify-write instead of being silently erased.
 */
export const Service = v.looseObject({
  name: v.string(),
  addrs: v.optional(v.array(v.string())),
  comment: v.optional(v.string()),
  annotations: v.optional(v.record(v.string(), v.string())),
  ports: v.optional(v.array(v.string())),
  tags: v.optional(v.array(v.string())),
});
export const ServiceList = v.object({ vipServices: v.nullish(v.array(Service), []) });

/**
 * Parses a response body. Issue text names the field and the expected type but never the received
 * value, which could be a secret (an auth key in the wrong place).
 */
export function parseBody<S extends v.GenericSchema>(
  schema: S,
  body: string,
  what: string,
): v.InferOutput<S> {
  let json: unknown;
  try {
    json = body === '' ? undefined : JSON.parse(body);
  } catch (cause) {
    throw new OperatorError('Internal', `${what}: response is not JSON`, { cause: (cause as Error).name });
  }
  const result = v.safeParse(schema, json);
  if (result.success) return result.output;
  const issues = result.issues
    .slice(0, 3)
    .map((issue) => `${v.getDotPath(issue) ?? '(root)'}: expected ${issue.expected ?? issue.type}`)
    .join('; ');
  throw new OperatorError('Internal', `${what}: unexpected response shape (${issues})`);
}
