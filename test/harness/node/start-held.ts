/**
 * Starts the node cluster, prints its state directory and cgroup as one JSON line, and waits to be
 * killed: the test of what happens when a test process dies without running any cleanup.
 */
import { startNodeCluster } from './index.ts';

const cluster = await startNodeCluster({ images: process.argv.slice(2) });
console.log(JSON.stringify({ stateDir: cluster.stateDir, cgroup: cluster.cgroup }));
await new Promise(() => {});
