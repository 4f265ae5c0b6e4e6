/**
 * Flows 3 (failover) and 5 (recovery) of issue 17 through the real data plane on the one-node
 * cluster: EG and the operator from their charts, our Envoy image, real containerboot/tailscaled
 * egress proxies, real tailnet devices (test/harness/node/data-plane.ts). The scenario, the settings
 * the hooks put on the cluster and the worst case they allow are in
 * test/harness/node/failover-scenario.ts; this asserts where the traffic went and how many requests
 * failed against that bound. Times are printed, never asserted (`npm run bench:failover` repeats the
 * scenario for the figures).
 *
 * Needs what test/node/traffic.test.ts needs. Run under `flock /tmp/tsgw-node.lock`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type DataPlane, startDataPlane } from '../harness/node/data-plane.ts';
import {
  DETECT_MS,
  type FailoverScenario,
  RATE,
  startFailoverScenario,
} from '../harness/node/failover-scenario.ts';
import { nodeClusterUnavailable } from '../harness/node/index.ts';

const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping failover-on-node tests: ${unavailable}`);
const ms = (n: number | undefined) => (n === undefined ? 'never' : `${n.toFixed(0)} ms`);

describe.skipIf(unavailable !== undefined)('flows 3 and 5: failover and recovery through real Envoy', () => {
  let dp: DataPlane;
  let scenario: FailoverScenario;

  beforeAll(async () => {
    dp = await startDataPlane({
      tag: 'failover',
      devices: [
        { name: 'web0', tags: ['tag:web'] },
        { name: 'web1', tags: ['tag:web'] },
      ],
    });
  }, 500_000);

  afterAll(async () => {
    await scenario?.stream.stop();
    await dp?.stop();
  }, 120_000);

  test('a TailscaleEndpoints with P0 on web0 and P1 on web1, both checked healthy: every answer comes from web0', async () => {
    scenario = await startFailoverScenario(dp);
    console.log(`Envoy hosts: ${JSON.stringify(scenario.hostsAtStart)}`);
    expect(Object.keys(scenario.hostsAtStart).length).toBe(2);
    expect(scenario.stream.samples.filter((s) => s.status !== 200)).toEqual([]);
  }, 300_000);

  test(`flow 3: web0 down → traffic moves to web1 with at most ${RATE} req/s × ${DETECT_MS} ms failed; web0 back → traffic returns with none failed`, async () => {
    const round = await scenario.failOverAndBack();
    const { moved, returned } = round;
    console.log(
      `failover at ${RATE} req/s: web0 down (${ms(round.downMs)}) → first answer from web1 after ${ms(moved.firstMs)}, settled after ${ms(moved.settledMs)}; ${moved.failed}/${moved.sent} failed over ${ms(moved.gapMs)} (bound ${round.bound}); web0 up → first answer from web0 after ${ms(returned.firstMs)}, settled after ${ms(returned.settledMs)}; ${returned.failed}/${returned.sent} failed`,
    );
    // It moved, losing no more requests than the health check settings allow, none after the window.
    expect(moved.settledMs).toBeDefined();
    expect(moved.failed).toBeLessThanOrEqual(round.bound);
    expect(round.late).toBe(0);
    // It came back with nothing lost: P0 takes traffic again only once its probes pass.
    expect(returned.settledMs).toBeDefined();
    expect(returned.failed).toBe(0);
  }, 200_000);

  test('flow 5: the egress proxy Pod deleted mid-stream returns as the same device (no new key, state Secret reused) and traffic resumes', async () => {
    const r = await scenario.deleteProxyPod();
    console.log(
      `egress proxy Pod deleted at ${RATE} req/s: new Pod Ready after ${ms(r.readyMs)}; first answer after ${ms(r.resumed.firstMs)}, settled after ${ms(r.resumed.settledMs)}; ${r.resumed.failed}/${r.resumed.sent} failed over a gap of ${ms(r.resumed.gapMs)}`,
    );
    expect(r.resumed.settledMs).toBeDefined();
    expect(r.before?.nodeId).toBeDefined();
    expect(r.after?.nodeId).toBe(r.before!.nodeId!);
    expect(r.after?.tailscaleIPs).toEqual(r.before!.tailscaleIPs!);
    expect(r.newKeys).toBe(0);
    expect(r.stateNamesNewPod).toBe(true);
  }, 300_000);

  test('flow 5: the operator leader Pod deleted mid-stream: another replica leads and no request fails', async () => {
    const r = await scenario.deleteLeader();
    console.log(
      `operator leader ${r.oldLeader} deleted at ${RATE} req/s: ${r.newHolder} leads after ${ms(r.leadMs)}; ${r.failed}/${r.sent} failed, ${r.elsewhere} answered by another device`,
    );
    expect(r.sent).toBeGreaterThan(RATE * 10);
    expect(r.failed).toBe(0);
    expect(r.elsewhere).toBe(0);
  }, 300_000);
});
