import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths that may carry credentials anywhere in a log object. pino replaces them
 * with "[redacted]" before serialising, so a secret never reaches a log line.
 */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  'authorization',
  'privateKey',
  '*.password',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.privateKey',
  'secretAccessKey',
  'sessionToken',
  '*.secretAccessKey',
  '*.sessionToken',
  '*.*.secretAccessKey',
  '*.*.sessionToken',
  'credentials',
  '*.credentials',
];

export interface LogOptions {
  level?: string; // default 'info', or DOCKSIDE_LOG_LEVEL
  destination?: number | string; // fd or file; default 2 (stderr), so stdout stays for --json output
}

/** The root logger. Each part takes a child: `log.child({ part: 'protocol' })`. */
export function createLogger(options: LogOptions = {}): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? process.env['DOCKSIDE_LOG_LEVEL'] ?? 'info',
    base: { app: 'dockside' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(opts, pino.destination({ dest: options.destination ?? 2, sync: true }));
}

/** A logger that writes nothing: the default for library objects created in tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
