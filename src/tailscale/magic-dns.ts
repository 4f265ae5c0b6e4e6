/**
 * MagicDNS names as the Tailscale API returns them. Both the TailscaleTailnet status (its tailnet's
 * suffix) and TailscaleEndpoints discovery (device names of a tailnet not yet Ready) read the suffix off a
 * device name, so it lives with the client rather than in either resource's folder.
 *
 * @module
 */

/** `host.tail1234.ts.net.` → `tail1234.ts.net`. */
export function magicDNSSuffixOf(deviceName: string | undefined): string | undefined {
  if (!deviceName) return undefined;
  const trimmed = deviceName.replace(/\.$/, '');
  const dot = trimmed.indexOf('.');
  return dot < 0 ? undefined : trimmed.slice(dot + 1);
}
