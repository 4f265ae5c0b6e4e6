/**
 * `npm run bench:failover`: failover and recovery through the real data plane on the one-node
 * cluster — the scenario of test/node/failover.test.ts (test/harness/node/failover-scenario.ts: a
 * steady 25 req/s stream from the host through EG's Envoy to a TailscaleEndpoints with P0 on device
 * web0 and P1 on web1, both health checked every 1 s), repeated for figures. Prints, asserts nothing:
 *
 * - per round: web0 `tailscale down` → time to the first answer from web1 and until every answer is
 *   web1's, requests failed (against the bound the health check settings allow); web0 `up` → time until
 *   every answer is web0's again, requests failed;
 * - the egress proxy Pod deleted: new Pod Ready, the gap in answers, requests failed;
 * - the operator leader Pod deleted: time to a new leader, requests failed.
 *
 * Needs root and what the node tests need; take the node lock like they do:
 *   flock /tmp/tsgw-node.lock npm run bench:failover [-- --rounds 3]
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { startDataPlane } from '../test/harness/node/data-plane.ts';
import { DETECT_MS, RATE, startFailoverScenario } from '../test/harness/node/failover-scenario.ts';
import { nodeClusterUnavailable } from '../test/harness/node/index.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);
const unavailable = nodeClusterUnavailable();
if (unavailable) {
  console.error(`bench:failover cannot run here: ${unavailable}`);
  process.exit(1);
}
const ms = (n: number | undefined) => (n === undefined ? 'never' : `${(n / 1000).toFixed(2)} s`);

const dp = await startDataPlane({
  tag: 'bench-failover',
  devices: [
    { name: 'web0', tags: ['tag:web'] },
    { name: 'web1', tags: ['tag:web'] },
  ],
});
try {
  const scenario = await startFailoverScenario(dp);
  console.log(`stream: ${RATE} req/s from the host through Envoy; worst-case detection ${DETECT_MS} ms`);
  for (let i = 1; i <= ROUNDS; i++) {
    const r = await scenario.failOverAndBack();
    console.log(
      `failover ${i}/${ROUNDS}: down → first web1 answer ${ms(r.moved.firstMs)}, all web1 ${ms(r.moved.settledMs)}, failed ${r.moved.failed}/${r.moved.sent} (bound ${r.bound}, late ${r.late}); up → all web0 ${ms(r.returned.settledMs)}, failed ${r.returned.failed}/${r.returned.sent}`,
    );
  }
  const p = await scenario.deleteProxyPod();
  console.log(
    `egress proxy Pod deleted: new Pod Ready ${ms(p.readyMs)}, first answer ${ms(p.resumed.firstMs)}, all web0 ${ms(p.resumed.settledMs)}, gap ${ms(p.resumed.gapMs)}, failed ${p.resumed.failed}/${p.resumed.sent}; same node ${p.after?.nodeId === p.before?.nodeId}, new keys ${p.newKeys}`,
  );
  const l = await scenario.deleteLeader();
  console.log(
    `operator leader deleted: new leader ${ms(l.leadMs)}, failed ${l.failed}/${l.sent}, answered elsewhere ${l.elsewhere}`,
  );
  await scenario.stream.stop();
} finally {
  await dp.stop();
}
