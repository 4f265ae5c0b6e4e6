/**
 * Start-to-ready time of the compiled binary in standalone mode: from spawn until /readyz answers 200.
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
import { compiledBinary, REPO_ROOT } from '../test/harness/support/binary.ts';

export async function benchStartup(runs = 5): Promise<void> {
  const binary = await compiledBinary();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const port = 18_080 + i;
    const started = performance.now();
    const child = Bun.spawn(
      [
        binary,
        'standalone',
        '--resources',
        'examples/standalone',
        '--http-addr',
        `127.0.0.1:${port}`,
        '--grpc-addr',
        '127.0.0.1:0',
      ],
      { cwd: REPO_ROOT, stdout: 'ignore', stderr: 'ignore' },
    );
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ok) break;
      await Bun.sleep(2);
    }
    samples.push(performance.now() - started);
    child.kill('SIGTERM');
    await child.exited;
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)]!;
  console.log(
    `startup (spawn → /readyz 200), ${runs} runs: median ${median.toFixed(1)} ms, min ${samples[0]!.toFixed(1)} ms, max ${samples.at(-1)!.toFixed(1)} ms`,
  );
}
