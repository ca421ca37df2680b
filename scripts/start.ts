/**
 * `npm start`: checks PostgreSQL and Redis (and the MQTT broker when MQTT_URL is set), migrates, then
 * runs the API (which consumes MQTT when MQTT_URL is set) and the flusher together in the
 * foreground with both logs. Ctrl-C (or SIGTERM) stops both cleanly; if one dies, both stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  ConfigError,
  loadConfig,
  sharedPortProblem,
  warnOfMisspelledSettings,
} from '../src/config';
import {
  exitOnStartupFailure,
  PROCESS_ENV_DEFAULTS,
  repeatsSignal,
  type SignalTaken,
} from '../src/lifecycle';
import { createLogger, startingLogLevel } from '../src/logger';
import { assertDependenciesReachable } from '../src/startup-checks';
import { commandLineOrExit, parseCommandLine } from './cli';
import { runMigrations } from './migrate';

const logger = createLogger({ level: startingLogLevel(process.env), name: 'start' });

function startChild(name: string, relativeEntry: string): ChildProcess {
  const compiled = path.extname(__filename) === '.js';
  const entry = path.join(__dirname, '..', relativeEntry + (compiled ? '.js' : '.ts'));
  // Under tsx, its loader in the child itself (not the tsx CLI, a process between us).
  const args = compiled ? [entry] : ['--import', 'tsx', entry];
  // A process group of its own: Ctrl-C (or a signal to our group) reaches us alone, and we pass
  // it on once; reaching the children too, it came twice, which they take as "exit now".
  // The IPC channel is how the child sees this process go, however it goes (see stopOnSignals).
  // Its output comes through this process, not the terminal: Node restores a terminal's settings
  // at exit, and when the terminal had been closed that aborted the child (SIGABRT, or SIGSEGV),
  // after it had stopped cleanly.
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...PROCESS_ENV_DEFAULTS, ...process.env },
    detached: true,
  });
  passLines(child.stdout, process.stdout);
  passLines(child.stderr, process.stderr);
  logger.info({ process: name, childPid: child.pid }, `${name} started`);
  return child;
}

/**
 * Copies whole lines, so that the two processes' log lines never interleave mid-line. Once `to`
 * fails (its terminal closed) lines are still read, and dropped: a child writing into a full pipe
 * would wait for ever.
 */
function passLines(from: Readable | null, to: Writable): void {
  if (!from) return;
  let failed = false;
  to.once('error', () => (failed = true));
  createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => {
    if (!failed) to.write(`${line}\n`);
  });
}

const command = {
  usage: 'npm start',
  summary:
    'Checks PostgreSQL and Redis (and the MQTT broker with MQTT_URL), migrates, then runs the API and a flusher in the foreground; Ctrl-C stops both. Settings from the environment: see the README, Configuration.',
  options: {},
} as const;

async function main(): Promise<void> {
  // Read first: a launcher gone while migrations ran would leave this process reparented already.
  const launcher = process.ppid;
  commandLineOrExit(() => parseCommandLine(process.argv.slice(2), command));
  if (!process.env.API_KEYS && !process.env.AUTH) {
    // The one-command local start stays one command: no keys configured means no authentication.
    process.env.AUTH = 'off';
    logger.warn(
      'no API_KEYS set: starting with AUTH=off (anyone who can reach the API can use it); see `npm run key`',
    );
  }
  warnOfMisspelledSettings(process.env, logger);
  const config = loadConfig(process.env);
  const sharedPort = sharedPortProblem(config);
  if (sharedPort) throw new ConfigError([sharedPort]);
  await assertDependenciesReachable(config, { mqtt: true, acceptsReadings: true });
  await runMigrations(config, logger);
  if (process.ppid !== launcher) {
    logger.warn(
      { launcher },
      'the process that started npm start went away while it migrated: not starting the engine',
    );
    return;
  }

  const children = new Map<string, ChildProcess>([
    ['api', startChild('api', 'src/server')],
    ['flusher', startChild('flusher', 'workers/flusher')],
  ]);
  let stopping = false;
  let exitCode = 0;

  const signalAll = (signal: NodeJS.Signals) => {
    for (const child of children.values()) if (child.exitCode === null) child.kill(signal);
  };
  let first: SignalTaken | null = null;
  const stopAll = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    first = { signal, at: Date.now() };
    signalAll(signal);
  };
  // A second Ctrl-C is passed on as well: the children then exit at once. The same signal again
  // at once is one Ctrl-C delivered twice (repeatsSignal): not passed on.
  const onSignal = (signal: NodeJS.Signals) => {
    if (!first) return stopAll(signal);
    if (!repeatsSignal(first, signal)) signalAll(signal);
  };

  for (const [name, child] of children) {
    // 'close', not 'exit': once its last lines are passed on too.
    child.on('close', (code, signal) => {
      children.delete(name);
      if (!stopping) {
        logger.error(
          { process: name, code, signal },
          `${name} exited unexpectedly: stopping the engine`,
        );
        exitCode = 1;
        stopAll('SIGTERM');
      } else if (code !== 0 && !(code === null && signal === first?.signal)) {
        // Stopped, but not cleanly (a second Ctrl-C, its stop timing out): said by the exit code
        // too. Ended by the signal sent it (before it took signals: still starting) is clean.
        logger.warn({ process: name, code, signal }, `${name} did not stop cleanly`);
        exitCode = 1;
      }
      if (children.size === 0) process.exit(exitCode);
    });
  }
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // The terminal closed, or npm went away without passing its signal on (its SIGTERM): stop too.
  process.on('SIGHUP', () => onSignal('SIGTERM'));
  const watchLauncher = setInterval(() => {
    if (process.ppid === launcher || stopping) return;
    clearInterval(watchLauncher);
    logger.warn(
      { launcher },
      'the process that started npm start (npm, a shell) went away: stopping the engine. npm start runs in the foreground; to keep the engine running, run npm run start:api and npm run start:flusher under a service manager',
    );
    stopAll('SIGTERM');
  }, 1000).unref();
  // Said once both answer: a request sent on "engine running" must not be refused.
  await Promise.all(
    [config.port, config.flusherPort].map((port) => answering(port, () => stopping)),
  );
  if (stopping) return;
  logger.info(
    `engine running: API on http://127.0.0.1:${config.port}${config.mqttUrl ? ' (consuming MQTT)' : ''}, flusher health on :${config.flusherPort}; Ctrl-C stops both`,
  );
}

/** Resolves once `/health/live` answers on `port` (at once for port 0: a port not known here). */
async function answering(port: number, stopping: () => boolean): Promise<void> {
  while (port !== 0 && !stopping()) {
    const answered = await fetch(`http://127.0.0.1:${port}/health/live`).then(
      (res) => res.ok,
      () => false,
    );
    if (answered) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

main().catch((err: unknown) => exitOnStartupFailure(err, logger));
