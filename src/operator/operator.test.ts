import { expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { SERVICE_ACCOUNT_DIR } from '../kube/kube-config.ts';
import { operatorNamespace } from './operator.ts';

test("the operator's namespace: the flag, then $POD_NAMESPACE as the entry point read it, then the default", () => {
  expect(operatorNamespace({ namespace: 'flagged' }, { podNamespace: 'from-pod' })).toBe('flagged');
  expect(operatorNamespace({}, { podNamespace: 'from-pod' })).toBe('from-pod');
  // Outside a Pod there is no service account namespace file to fall back on.
  if (!existsSync(`${SERVICE_ACCOUNT_DIR}/namespace`))
    expect(operatorNamespace({}, {})).toBe('tailscale-gateway');
});
