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
    v.pipe(
      v.string(),
      v.maxLength(253),
      v.description(
        'spec.tailnet once checked, when it names a tailnet; absent for "-" (the API does not say the ' +
          "OAuth client's tailnet by name: magicDNSSuffix tells it apart).",
      ),
    ),
  ),
  magicDNSSuffix: v.optional(
    v.pipe(
      v.string(),
      v.maxLength(253),
      v.description(
        "MagicDNS suffix (tailXXXX.ts.net, the tailnet's DNS name) used to build FQDNs; learnt from the " +
          'name of any device the OAuth client can list, so absent while the tailnet has none.',
      ),
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
    {
      name: 'Tailnet',
      type: 'string',
      jsonPath: '.spec.tailnet',
      description: "Tailnet in API paths; - is the OAuth client's own.",
    },
    {
      name: 'MagicDNS',
      type: 'string',
      jsonPath: '.status.magicDNSSuffix',
      description: "The tailnet's DNS name (tailXXXX.ts.net).",
    },
    readyColumn,
    ageColumn,
  ],
};
