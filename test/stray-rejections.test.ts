import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { baseRedisUrl } from './helpers/test-env';

/**
 * A process's handling of unhandled rejections (surviveIoredisStrayRejections) is global: each
 * case runs in a Node process of its own (TypeScript through tsx), as the engine's processes do.
 */
function runWith(leftUnhandled: string) {
  const script = `
    const { Redis } = require('ioredis');
    const { createLogger } = require('./src/logger');
    const { surviveIoredisStrayRejections } = require('./src/redis');
    surviveIoredisStrayRejections(createLogger({ level: 'info', name: 'test' }));
    const redis = new Redis(${JSON.stringify(baseRedisUrl())}, { enableOfflineQueue: false });
    redis.on('ready', () => {
      ${leftUnhandled}
      setTimeout(() => { console.log('{"msg":"still running"}'); process.exit(0); }, 300);
    });`;
  const run = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    timeout: 30_000,
  });
  const lines = run.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg: string; level?: number });
  return { status: run.status, messages: lines.map((l) => l.msg) };
}

describe('a rejection nobody handles', () => {
  test('when ioredis rejects a command of a connection that closed under it, nobody listening (as its ASKING on a redirection), then the process logs it and lives on', () => {
    // A blocking command pending when its connection closes: rejected by ioredis's close handler.
    const { status, messages } = runWith(`
      redis.blpop('stray-rejection-test', 5);
      setTimeout(() => redis.disconnect(), 50);`);
    expect(messages).toEqual([
      expect.stringMatching(/^a Redis connection closed under a redirected command/),
      'still running',
    ]);
    expect(status).toBe(0);
  });

  test('when any other promise is rejected unhandled, then the process logs it and exits, as Node does (a bug must not go on silently)', () => {
    const { status, messages } = runWith(`
      Promise.reject(new Error('Connection is closed.'));`);
    expect(messages).toEqual(['unhandled promise rejection: exiting']);
    expect(status).not.toBe(0);
  });
});
