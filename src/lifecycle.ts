import type { Server } from 'node:http';
import type { Express } from 'express';
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { createHttpServer } from './http/http-server';
import type { Logger } from './logger';
import { writeRepeatedCounts } from './repeated-errors';
import { StartupError } from './startup-error';

/**
 * For a process that takes no arguments (its settings come from the environment): `--help` says
 * what it runs and where its settings come from; any other argument is a usage error (exit 2),
 * not ignored on the way to starting.
 */
export function refuseArguments(argv: readonly string[], what: string): void {
  if (argv.length === 0) return;
  const usage = `${what}\nIt takes no arguments: its settings come from the environment (see the README, Configuration).`;
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  process.stderr.write(`Unexpected argument '${argv[0]}'\n${usage}\n`);
  process.exit(2);
}

/**
 * A signal repeated within this long of the first is the same stop delivered twice (a terminal's
 * Ctrl-C reaches the process group, and npm passes it on as well; systemd signals every process
 * of the unit), not an operator asking again.
 */
const REPEATED_SIGNAL_MS = 1000;

/** The first stop signal a process took, and when. */
export interface SignalTaken {
  signal: NodeJS.Signals;
  at: number;
}

/** Whether `signal` is `first` delivered again (REPEATED_SIGNAL_MS), not a second request. */
export const repeatsSignal = (first: SignalTaken | null, signal: NodeJS.Signals): boolean =>
  first !== null && signal === first.signal && Date.now() - first.at < REPEATED_SIGNAL_MS;

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits. A second signal (another one, or the same
 * after REPEATED_SIGNAL_MS), or a stop that outlives `timeoutMs`, exits at once: an operator's
 * Ctrl-C twice must always work.
 */
export function stopOnSignals(stop: () => Promise<void>, logger: Logger, timeoutMs: number): void {
  let first: SignalTaken | null = null;
  /** Exits with its last line last: counts of errors that repeated during the stop come first. */
  const exitSaying = (code: 0 | 1, say: () => void): never => {
    writeRepeatedCounts();
    say();
    return process.exit(code);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (repeatsSignal(first, signal)) return;
    if (first) exitSaying(1, () => logger.warn({ signal }, 'second signal: exiting now'));
    first = { signal, at: Date.now() };
    logger.info({ signal }, 'stopping');
    const timer = setTimeout(
      () => exitSaying(1, () => logger.error({ timeoutMs }, 'stop took too long: exiting anyway')),
      timeoutMs,
    );
    timer.unref();
    stop().then(
      () => exitSaying(0, () => logger.info('stopped cleanly')),
      (err: unknown) => exitSaying(1, () => logger.error({ err }, 'error while stopping')),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Started by `npm start` (with an IPC channel to it): stop when it goes away, however it went
  // (killed, its terminal closed), rather than run on unseen and hold the ports.
  if (process.channel) {
    process.channel.unref();
    process.once('disconnect', () => onSignal('SIGTERM'));
  } else if (process.send && !process.connected) {
    // It went away while this process was starting, before this listened: stop now.
    onSignal('SIGTERM');
  }
}

/**
 * Starts `app` listening on `port` (set by `setting`), on a server made by createHttpServer. A port
 * already in use or not allowed is a StartupError naming the port and its setting (Express 5's own
 * `listen` handed the error to its callback, and the processes went on as if listening).
 */
export function listen(app: Express, port: number, setting: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createHttpServer(app);
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(
          new StartupError(
            `port ${port} (${setting}) is already in use: stop what listens there, or set ${setting} to a free port`,
          ),
        );
      } else if (error.code === 'EACCES') {
        reject(
          new StartupError(
            `port ${port} (${setting}) needs privileges this process does not have: set ${setting} to a port above 1023`,
          ),
        );
      } else reject(error);
    });
    server.listen(port, () => resolve(server));
  });
}

/** Reports a start-up failure as a readable message (no stack trace for expected failures). */
export function exitOnStartupFailure(err: unknown, logger: Logger): never {
  const message = err instanceof Error ? err.message : String(err);
  const expected = err instanceof StartupError;
  logger.fatal(expected ? { reason: message } : { err }, 'cannot start');
  // The log line is JSON for machines; a person at a terminal gets the plain message too.
  process.stderr.write(`\nCannot start: ${message}\n\n`);
  process.exit(1);
}

/**
 * The environment the engine's processes start with unless it sets these itself (`npm start`, the
 * benchmark; the Dockerfile sets the same). MALLOC_ARENA_MAX: glibc's malloc gives each thread
 * that allocates an arena of its own (up to 8 per core), and memory freed in one is not reused by
 * another; with two the API's peak RSS under 1,000-reading batches was 144-154 MB against 151-160
 * (10 rounds alternating), at the same throughput. glibc reads it before any code runs.
 */
export const PROCESS_ENV_DEFAULTS: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/**
 * Keeps the JavaScript heap near its live data (HEAP_GROWING_PERCENT). Under ingest load V8 let
 * the API's heap grow to several times what it kept: 225 MB resident for about 26 MB live, 140 MB
 * with 20 %, at a few percent of throughput (more frequent, shorter full collections). V8 reads
 * the flag at each collection, so it applies when set at start.
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * Lowers this process's CPU priority to `nice` (FLUSHER_NICE) unless it already runs lower: a
 * background writer sharing cores with the API then takes what the API leaves. Measured with the
 * flusher draining 1,000 single readings/s beside the API: the API's p50 and p95 lower in 8 of 9
 * rounds, and 1-17 % more single readings/s at saturation. Lowering a priority needs no privilege.
 * On Linux a priority is a thread's: every thread of the process is lowered (V8's garbage
 * collection threads, started before this runs, took a tenth of the flusher's CPU at full
 * priority); threads started later inherit it from the thread that starts them. A thread started
 * while the list is walked, by one not lowered yet, is missed: the walk is repeated until it
 * lowers nothing.
 */
export function lowerCpuPriority(nice: number, logger: Logger): void {
  try {
    for (let pass = 0; pass < 5 && lowerThreads(nice) > 0; pass++);
  } catch (err) {
    logger.warn({ err, nice }, 'could not lower the CPU priority: running at the same as the API');
  }
}

/** One walk over this process's threads: how many it lowered to `nice`. */
function lowerThreads(nice: number): number {
  let lowered = 0;
  for (const thread of threadsOfThisProcess()) {
    try {
      if (nice > getPriority(thread)) {
        setPriority(thread, nice);
        lowered++;
      }
    } catch (err) {
      // A thread that ended since the list was read has no priority to lower.
      if ((err as { info?: { code?: string } }).info?.code !== 'ESRCH') throw err;
    }
  }
  return lowered;
}

/** This process's thread ids (Linux's /proc), or 0 (the calling thread) where there is none. */
function threadsOfThisProcess(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [0];
  }
}
