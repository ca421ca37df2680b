import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../../src/config';

const ROOT = path.join(__dirname, '..', '..');

export interface EngineProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string | null>;
}

/** The environment that points an engine process at a test context's database and Redis prefix. */
export function envFor(config: Config, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    REDIS_PREFIX: config.redisPrefix,
    FLUSH_BACKOFF_MS: String(config.flushBackoffMs),
    LOG_LEVEL: 'warn',
    AUTH: 'off',
    PORT: '0',
    FLUSHER_PORT: '0',
    ...extra,
  };
}

/**
 * Starts a TypeScript entry point (e.g. workers/flusher.ts) as one separate process: `node --import
 * tsx`, not the tsx CLI, which would run it in a child and keep it alive past a SIGKILL.
 */
export function startProcess(
  entry: string,
  env: Record<string, string>,
  args: string[] = [],
): EngineProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal)),
  );
  return { child, output: () => output, exited };
}
