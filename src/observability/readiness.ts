/**
 * Readiness: may this pod receive traffic now?
 *
 * Envoy Gateway calls the extension server fail-closed, so a pod must not enter the Service endpoints
 * before its caches have synced and its gRPC server listens, and must leave them as soon as shutdown
 * begins (reference §4.4 step 1). Each subsystem registers a named component and flips it; `/readyz`
 * reports the aggregate and names every component so a 503 explains itself.
 *
 * @module
 */

/** The switch one subsystem holds to report its own readiness. */
export interface ComponentHandle {
  /**
   * Reports the component's state; `message` explains a not-ready state (or clears it when omitted).
   * `problems` lists what a ready component could not take in (e.g. invalid resource documents), one
   * line each, so `/readyz` shows them where a person looks first; omitted or empty clears them.
   */
  set(ready: boolean, message?: string, problems?: readonly string[]): void;
}

/** One row of the readiness report, as served by `/readyz`. */
export interface ComponentState {
  name: string;
  ready: boolean;
  message?: string;
  /** Present only when non-empty. */
  problems?: string[];
}

export interface Readiness {
  /**
   * Registers `name` (not ready until it says otherwise) and returns its handle. Registering the same
   * name again returns a handle to the same component, so a subsystem that restarts need not track
   * whether it registered before.
   */
  component(name: string): ComponentHandle;
  /** True only when at least one component is registered, all are ready, and shutdown has not begun. */
  isReady(): boolean;
  /** Every component in registration order, plus a synthetic row explaining why it is not ready. */
  report(): ComponentState[];
  /** Latches not-ready for good, so endpoints drop the pod while in-flight work drains. */
  beginShutdown(): void;
}

/** Name of the synthetic row reported after `beginShutdown()`. */
export const SHUTDOWN_COMPONENT = 'shutdown';
/** Name of the synthetic row reported while nothing has registered yet. */
export const NO_COMPONENTS = 'components';

/**
 * Creates an empty readiness tracker.
 *
 * With no components registered it is **not** ready: registration happens during start-up wiring, so an
 * empty set means wiring has not got that far, and "ready by default" would let a probe pass in the
 * window before the gRPC server and caches register themselves.
 *
 * @example
 * const readiness = createReadiness();
 * const caches = readiness.component('caches');
 * await informers.synced();
 * caches.set(true);
 */
export function createReadiness(): Readiness {
  const components = new Map<string, ComponentState>();
  let shuttingDown = false;

  return {
    component(name) {
      let state = components.get(name);
      if (state === undefined) {
        state = { name, ready: false, message: 'not reported yet' };
        components.set(name, state);
      }
      const entry = state;
      return {
        set(ready, message, problems) {
          entry.ready = ready;
          if (message === undefined) delete entry.message;
          else entry.message = message;
          if (problems === undefined || problems.length === 0) delete entry.problems;
          else entry.problems = [...problems];
        },
      };
    },

    isReady() {
      if (shuttingDown || components.size === 0) return false;
      for (const state of components.values()) if (!state.ready) return false;
      return true;
    },

    report() {
      const rows: ComponentState[] = [...components.values()].map((state) => ({
        ...state,
        ...(state.problems ? { problems: [...state.problems] } : {}),
      }));
      if (rows.length === 0) {
        rows.push({ name: NO_COMPONENTS, ready: false, message: 'no components registered yet' });
      }
      if (shuttingDown) rows.push({ name: SHUTDOWN_COMPONENT, ready: false, message: 'shutting down' });
      return rows;
    },

    beginShutdown() {
      shuttingDown = true;
    },
  };
}
