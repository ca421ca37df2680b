import pino, { type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The log level a script starts with, before its configuration is read: LOG_LEVEL when it is one,
 * else `info` (a wrong LOG_LEVEL is then reported by loadConfig).
 */
export function startingLogLevel(env: Record<string, string | undefined>): LogLevel {
  const asked = env.LOG_LEVEL?.trim();
  return (LOG_LEVELS as readonly string[]).includes(asked ?? '') ? (asked as LogLevel) : 'info';
}

/** The root logger of a process; modules take named children of it (`logger.child({ module })`). */
export function createLogger({ level, name }: { level: LogLevel; name: string }): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: pino.stdSerializers.err },
  });
}
