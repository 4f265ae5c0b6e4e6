/**
 * The environment variables the operator reads besides its `TSGW_*` settings: what the Pod learns about
 * itself from the downward API (the chart sets `POD_NAME` and `POD_NAMESPACE`) and what the Kubernetes
 * client finds its API server by (`KUBECONFIG`, and the `KUBERNETES_SERVICE_HOST/PORT` the kubelet sets in
 * every Pod). Read here once, from the environment the CLI was given, and handed down as plain options,
 * so no module below the entry point reads `process.env` and every one of them can be tested with its own.
 *
 * @module
 */

/**
 * The variables the Kubernetes client's configuration lookup reads (`src/kube/kube-config.ts`). A type,
 * not an interface, so it passes as that adapter's plain environment record.
 */
export type KubeEnvironment = {
  readonly KUBECONFIG?: string;
  readonly KUBERNETES_SERVICE_HOST?: string;
  readonly KUBERNETES_SERVICE_PORT?: string;
};

export interface ProcessEnvironment {
  /** `$POD_NAME`: the leader-election candidate's name (default: the host name). */
  readonly podName?: string;
  /** `$POD_NAMESPACE`: the operator's namespace when `--namespace` is not given. */
  readonly podNamespace?: string;
  readonly kube: KubeEnvironment;
}

/** An empty variable counts as unset, as it does for the `TSGW_*` settings. */
export function readEnvironment(env: Readonly<Record<string, string | undefined>>): ProcessEnvironment {
  const value = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const pick = <K extends string>(names: readonly K[]) =>
    Object.fromEntries(names.flatMap((name) => (value(name) === undefined ? [] : [[name, value(name)]]))) as {
      [P in K]?: string;
    };
  const podName = value('POD_NAME');
  const podNamespace = value('POD_NAMESPACE');
  return {
    ...(podName === undefined ? {} : { podName }),
    ...(podNamespace === undefined ? {} : { podNamespace }),
    kube: pick(['KUBECONFIG', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT']),
  };
}
