// Logging goes through pino. Core code takes a Logger (the subset of pino's API it uses) so an
// application can pass its own pino instance; the default writes JSON lines to stderr.
import { pino } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled?(level: string): boolean;
}

export function createLogger(
  level: LogLevel = 'warn',
  bindings: Record<string, unknown> = {},
): Logger {
  return pino(
    { level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination(2),
  );
}
