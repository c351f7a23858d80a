import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino censors wherever they appear in a log record. Request headers
 * carry bearer tokens; kubeconfigs carry client keys and tokens; a Secret's
 * `data` must never reach a log line even when an object is logged whole.
 */
export const REDACTED_PATHS = [
  'authorization',
  'Authorization',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'bearerToken',
  '*.bearerToken',
  'clientKey',
  '*.clientKey',
  'keyData',
  '*.keyData',
  'client-key-data',
  '*["client-key-data"]',
  'password',
  '*.password',
  'secret.data',
  'secret.stringData',
  '*.secret.data',
  '*.secret.stringData',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where records go; stderr by default so stdout stays for command output. */
  destination?: DestinationStream;
}

/** Replaces `data`/`stringData` of anything that looks like a Secret. */
export function redactSecretObject(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const obj = value as Record<string, unknown>;
  if (obj.kind === 'Secret' || obj.kind === 'SecretList') {
    const copy: Record<string, unknown> = { ...obj };
    if ('data' in copy) copy.data = '[Redacted]';
    if ('stringData' in copy) copy.stringData = '[Redacted]';
    if (Array.isArray(copy.items)) copy.items = copy.items.map(redactSecretObject);
    return copy;
  }
  return value;
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? process.env.EDGEBOX_LOG_LEVEL ?? 'info';
  return pino(
    {
      name: options.name,
      level,
      redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
      serializers: { object: redactSecretObject, obj: redactSecretObject },
      base: { pid: process.pid },
    },
    options.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything: for tests and library use without a sink. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
