/**
 * The process's stdout and stderr for the CLI, and the one way the process exits. Bun buffers what a
 * pipe cannot take yet (a pipe holds 64 KiB; `crds` prints about 100 KiB) and `process.exit` drops that
 * buffer, so `tailscale-gateway crds | kubectl apply -f -` lost the end of the output whenever kubectl
 * read later than the binary exited. Every write here is tracked until the system has taken it, and
 * `exitProcess` waits for all of them: however slowly the reader drains the pipe, it gets everything.
 *
 * @module
 */
/** Where the CLI writes and what environment it reads; tests pass their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

/** Writes not yet handed to the system, across both streams. */
const pending = new Set<Promise<void>>();

/** A write that settles when the stream has taken `text` or failed (EPIPE when the reader went away). */
function tracked(stream: NodeJS.WritableStream): (text: string) => void {
  return (text) => {
    const write = new Promise<void>((resolve) => {
      stream.write(text, () => resolve());
    });
    pending.add(write);
    void write.then(() => pending.delete(write));
  };
}

/** The CLI's view of the real process. */
export const processIo: CliIo = {
  stdout: tracked(process.stdout),
  stderr: tracked(process.stderr),
  env: process.env,
};

/** Resolves once every write made through `processIo` so far has been taken (or has failed). */
export async function flushProcessIo(): Promise<void> {
  while (pending.size > 0) await Promise.all(pending);
}

/**
 * Ends the process with `code` after its output is flushed. The only exit of the binary: the CLI's
 * return and the long-running modes' shutdown both come here, so no path can drop buffered output.
 */
export async function exitProcess(code: number): Promise<never> {
  await flushProcessIo();
  process.exit(code);
}
