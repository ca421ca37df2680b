import { fork } from 'node:child_process';
import path from 'node:path';

describe('a process started by npm start', () => {
  test('when npm start goes away before the process registered its stop, then it stops anyway once it does', async () => {
    const child = fork(path.join(__dirname, '../fixtures/late-stop-registration.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // The channel closes at once, as when npm start is killed while its children start.
    child.disconnect();
    const code = await Promise.race([
      exited,
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 10_000)),
    ]);
    if (code === 'running') child.kill('SIGKILL');
    expect(code).toBe(0);
  });
});

describe('a process that stops', () => {
  test('when an error that repeated is still being counted, then its count is logged before "stopped cleanly", not after', async () => {
    const script = `
      const { createLogger } = require(${JSON.stringify(path.join(__dirname, '../../src/logger'))});
      const { stopOnSignals } = require(${JSON.stringify(path.join(__dirname, '../../src/lifecycle'))});
      const { RepeatedErrorLog } = require(${JSON.stringify(path.join(__dirname, '../../src/repeated-errors'))});
      const logger = createLogger({ level: 'info', name: 'test' });
      const refusals = new RepeatedErrorLog({ logger, level: 'warn' });
      const keepAlive = setInterval(() => undefined, 1000);
      stopOnSignals(async () => {
        // A store refused during the stop: the second is counted, to be logged at the interval's end.
        refusals.log(new Error('enqueue timed out'), {}, 'enqueue failed');
        refusals.log(new Error('enqueue timed out'), {}, 'enqueue failed');
        clearInterval(keepAlive);
      }, logger, 5000);
      process.send('ready');
    `;
    const child = fork('-e', [script], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'ignore', 'ipc'],
    });
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise((resolve) => child.once('message', resolve));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; repeated?: number });
    expect(lines.map((l) => [l.msg, l.repeated])).toEqual([
      ['stopping', undefined],
      ['enqueue failed', undefined],
      ['enqueue failed', 1],
      ['stopped cleanly', undefined],
    ]);
  });
});
