/**
 * TailscaleTailnet: the credentials and defaults for one tailnet. Cluster-scoped because a tailnet is
 * shared by every namespace that routes through it, and its OAuth Secret is something only a cluster
 * admin should pick.
 *
 * @module
 */

import * as v from 'valibot';
import {
  ageColumn,
  conditions,
  type KindDefinition,
  namespaceName,
  objectName,
  readyColumn,
  resourceSchema,
  tags,
} from './meta.ts';

export const TailscaleTailnetSpec = v.strictObject({
  tailnet: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.maxLength(253),
      v.description('Tailnet name or ID used in API paths; "-" means the tailnet of the OAuth client.'),
    ),
    '-',
  ),
  oauthSecretRef: v.pipe(
    v.strictObject({
      name: objectName('oauthSecretRef.name'),
      namespace: namespaceName(),
    }),
    v.description(
      'Secret holding the OAuth client under the keys client_id and client_secret. The client needs the ' +
        'auth_keys, devices:core and services scopes and must own the tags below.',
    ),
  ),
  tags: v.optional(
    tags('Tags for auth keys and Tailscale Services of this tailnet, unless a resource sets its own.'),
    ['tag:k8s'],
  ),
});

export const TailscaleTailnetStatus = v.strictObject({
  conditions: conditions(),
  tailnet: v.optional(
    v.pipe(v.string(), v.maxLength(253), v.description('The tailnet the credentials resolved to.')),
  ),
  magicDNSSuffix: v.optional(
    v.pipe(
      v.string(),
      v.maxLength(253),
      v.description('MagicDNS suffix (tailXXXX.ts.net) used to build FQDNs.'),
    ),
  ),
});

export const TailscaleTailnetSchema = resourceSchema(
  'TailscaleTailnet',
  TailscaleTailnetSpec,
  TailscaleTailnetStatus,
);
export type TailscaleTailnet = v.InferOutput<typeof TailscaleTailnetSchema>;
export type TailscaleTailnetSpec = v.InferOutput<typeof TailscaleTailnetSpec>;
export type TailscaleTailnetStatus = v.InferOutput<typeof TailscaleTailnetStatus>;

export const tailscaleTailnetDefinition: KindDefinition = {
  kind: 'TailscaleTailnet',
  plural: 'tailscaletailnets',
  singular: 'tailscaletailnet',
  shortNames: ['tstn'],
  scope: 'Cluster',
  description: 'OAuth credentials and default tags for one tailnet.',
  spec: TailscaleTailnetSpec,
  status: TailscaleTailnetStatus,
  printerColumns: [
    { name: 'Tailnet', type: 'string', jsonPath: '.status.tailnet', description: 'Resolved tailnet.' },
    readyColumn,
    ageColumn,
  ],
};
