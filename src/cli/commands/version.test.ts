import { expect, test } from 'bun:test';
import pkg from '../../../package.json' with { type: 'json' };
import { versionCommand } from './version.ts';

test('run from source, version says so instead of a commit and a build date', async () => {
  const out: string[] = [];
  const code = await versionCommand.run({
    config: {} as never,
    environment: { kube: {} },
    io: { stdout: (text) => out.push(text), stderr: () => {}, env: {} },
  });
  expect(code).toBe(0);
  expect(out.join('')).toBe(`tailscale-gateway ${pkg.version} (dev, run from source, bun ${Bun.version})\n`);
});
