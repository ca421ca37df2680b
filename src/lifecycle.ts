import type { Logger } from './logger';
import { StartupError } from './startup-error';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits. A second signal, or a stop that outlives
 * `timeoutMs`, exits at once: an operator's Ctrl-C twice must always work.
 */
export function stopOnSignals(stop: () => Promise<void>, logger: Logger, timeoutMs: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'stop took too long: exiting anyway');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stop().then(
      () => {
        logger.info('stopped cleanly');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
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
