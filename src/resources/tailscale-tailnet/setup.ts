/**
 * TailscaleTailnet in `run`: the OAuth Secret watches (every replica, so a new leader reads them at
 * once) and, per leadership term, the controller that checks credentials and writes status. A change
 * of a watched Secret wakes the tailnets that use it in the current term's controller.
 *
 * @module
 */
import {
  applyStatus,
  type Controller,
  createController,
  type FeatureDeps,
  type Term,
} from '../../controller-runtime/index.ts';
import type { ResourceInformer } from '../../kube/index.ts';
import { createSecretWatches, type SecretRef, type SecretWatches } from './secret-watches.ts';
import type { TailnetClients } from './tailnet-clients.ts';
import { createTailscaleTailnetReconciler } from './tailscale-tailnet.ts';

export interface TailscaleTailnetSetupOptions extends FeatureDeps {
  tailnets: ResourceInformer<'TailscaleTailnet'>;
  clients: TailnetClients;
}

export interface TailscaleTailnetSetup {
  /** The OAuth Secret watches; stop them at shutdown. */
  secrets: SecretWatches;
  /** Adds the term's TailscaleTailnet controller. */
  inTerm(term: Term): void;
}

export function setupTailscaleTailnet(options: TailscaleTailnetSetupOptions): TailscaleTailnetSetup {
  const { kube, tailnets, log, registry } = options;
  /** The current term's controller (none between terms). */
  const leading = new Set<Controller>();
  const secretsOf = (): SecretRef[] =>
    tailnets
      .valid()
      .map((t) => t.spec.oauthSecretRef)
      .filter(Boolean);
  const secrets = createSecretWatches({
    client: kube,
    log: log.child({ component: 'secret-watches' }),
    registry,
    onChange: (ref) => {
      for (const tailnet of tailnets.valid()) {
        const used = tailnet.spec.oauthSecretRef;
        if (used?.namespace === ref.namespace && used.name === ref.name) {
          for (const controller of leading) controller.enqueue(tailnet.metadata.name);
        }
      }
    },
  });
  return {
    secrets,
    inTerm(term) {
      const controller = createController({
        name: 'tailscaletailnet',
        log,
        registry,
        reconcile: createTailscaleTailnetReconciler({
          getTailnet: (name) => tailnets.checked(undefined, name),
          getSecret: (ref, abort) => {
            secrets.retain(secretsOf());
            return secrets.get(ref, abort);
          },
          clients: options.clients,
          writeStatus: async (tailnet, status, abort) => {
            await applyStatus(kube, tailnet, status, { signal: abort });
          },
          events: options.events,
          clock: options.clock,
        }),
      }).for(tailnets);
      leading.add(controller);
      term.onEnd(() => leading.delete(controller));
      term.addControllers(controller);
    },
  };
}
