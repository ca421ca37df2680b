import { writeSync } from 'node:fs';
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

/** Characters of an error's message (and stack) kept at each end in a log line. */
const MESSAGE_ENDS = 400;

/** `text` with its middle left out when longer than both ends: what was cut is counted. */
function keepEnds(text: string): string {
  if (text.length <= 3 * MESSAGE_ENDS) return text;
  const cut = text.length - 2 * MESSAGE_ENDS;
  return `${text.slice(0, MESSAGE_ENDS)} [... ${cut} characters ...] ${text.slice(-MESSAGE_ENDS)}`;
}

/**
 * pino's error serializer, with long messages cut in the middle: knex puts a failed statement's
 * whole SQL before PostgreSQL's reason ("insert into ... - canceling statement due to statement
 * timeout"), so a flush's warning was about 6 KB with its cause at the very end, where log viewers
 * cut the line.
 */
export function errorForLog(err: Error): Record<string, unknown> {
  const serialized = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (const field of ['message', 'stack'] as const) {
    const value = serialized[field];
    if (typeof value === 'string') serialized[field] = keepEnds(value);
  }
  return serialized;
}

/**
 * Standard output for the log, given up once a write to it fails. pino's own drops only a closed
 * pipe (EPIPE); any other failure, such as EIO from a terminal that was closed under `npm start`,
 * was thrown as an uncaught error, and at exit pino's flush retried the line for ever: the API and
 * the flusher hung on holding their ports, answering nothing. A process that cannot log must still
 * be able to stop.
 */
export function logDestination(fd = process.stdout.fd): pino.DestinationStream {
  const destination = pino.destination({ fd, sync: false });
  let given = false;
  const giveUp = (err: NodeJS.ErrnoException) => {
    if (given) return;
    given = true;
    const noop = () => true;
    Object.assign(destination, { write: noop, flushSync: noop, end: noop, destroy: noop });
    // Said where it can still be read, if anywhere (a full disk behind standard output).
    tryWrite(2, `log output (fd ${fd}) failed with ${err.code ?? err.message}: logging stops\n`);
  };
  destination.on('error', giveUp);
  // At exit, a failed write still in flight has not said so yet, and sonic-boom 4's flushSync
  // retries any failure for ever: a write of nothing first finds a closed terminal (EIO).
  const flushSync = destination.flushSync.bind(destination);
  destination.flushSync = () => {
    const failed = tryWrite(fd, '');
    if (failed) giveUp(failed);
    else flushSync();
  };
  return destination;
}

/** Writes `text` to `fd` at once; the error if it failed. */
function tryWrite(fd: number, text: string): NodeJS.ErrnoException | null {
  try {
    writeSync(fd, text);
    return null;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

/** The root logger of a process; modules take named children of it (`logger.child({ module })`). */
export function createLogger({ level, name }: { level: LogLevel; name: string }): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: errorForLog },
    },
    logDestination(),
  );
}
