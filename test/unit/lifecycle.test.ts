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
