/**
 * Structured logging. One logger is created in `main` and passed down (child loggers per component);
 * nothing imports a global. JSON lines by default because that is what log collectors parse; `text`
 * pretty-prints in-process (pino-pretty as a stream, not a transport: transports run in a worker thread
 * that cannot load its modules from inside a `bun build --compile` binary).
 *
 * @module
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * Paths redacted from every log line. Secrets must never reach logs, even when a whole object (a
 * Secret, an HTTP request, a Tailscale API response) is logged by mistake.
 */
export const REDACTED_PATHS = [
  'clientSecret',
  'client_secret',
  'authKey',
  'authkey',
  'token',
  'password',
  '*.clientSecret',
  '*.client_secret',
  '*.authKey',
  '*.authkey',
  '*.token',
  '*.access_token',
  '*.password',
  '*.stringData',
  'headers.authorization',
  'headers.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
];

export interface LoggerOptions {
  /** Minimum level. Default `info`. */
  level?: string;
  /** `json` (default) or `text`. */
  format?: 'json' | 'text';
  /** Where lines go. Default: stdout. Tests pass a stream to read them back. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = {
    level: options.level ?? 'info',
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
  };
  if (options.format === 'text') {
    const stream = pretty({
      sync: true,
      colorize: false,
      translateTime: 'SYS:standard',
      destination: options.destination ?? 1,
    });
    return pino(base, stream);
  }
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: true }));
}
