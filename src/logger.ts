import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

export type { Logger };

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
