import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorForLog } from '../../src/logger';

describe('errorForLog', () => {
  test("when a failed statement's error carries its whole SQL, then the log keeps both ends and the cause", () => {
    const sql = `insert into "telemetry_history" ${'($1, $2, $3), '.repeat(500)}`;
    const err = Object.assign(new Error(`${sql} - canceling statement due to statement timeout`), {
      code: '57014',
    });
    const logged = errorForLog(err);
    expect((logged.message as string).length).toBeLessThan(1000);
    expect(logged.message).toMatch(/^insert into "telemetry_history" /);
    expect(logged.message).toMatch(/\[\.\.\. \d+ characters \.\.\.\]/);
    expect(logged.message).toMatch(/ - canceling statement due to statement timeout$/);
    expect((logged.stack as string).length).toBeLessThan(1000);
    expect(logged.code).toBe('57014');
  });

  test('when a message is short, then it is logged whole', () => {
    const logged = errorForLog(new Error('Redis connection is reconnecting'));
    expect(logged.message).toBe('Redis connection is reconnecting');
    expect(logged.type).toBe('Error');
  });
});

describe('a log that cannot be written', () => {
  test.each([
    [
      'after its failure was seen',
      "logger.info('stopping'); setTimeout(() => { logger.info('stopped cleanly'); process.exit(0); }, 200);",
    ],
    [
      'before its failure was seen',
      "logger.info('stopping'); logger.info('stopped cleanly'); process.exit(0);",
    ],
  ])(
    'when standard output fails (a closed terminal) and the process exits %s, then it exits, saying on stderr that logging stopped',
    async (_when, steps) => {
      // Opened for reading only: every write to it fails, as one to a closed terminal does (EIO).
      const file = path.join(os.tmpdir(), `unwritable-log-${process.pid}`);
      closeSync(openSync(file, 'w'));
      const unwritable = openSync(file, 'r');
      const script = `
        const { createLogger } = require(${JSON.stringify(path.join(__dirname, '../../src/logger'))});
        const logger = createLogger({ level: 'info', name: 'test' });
        ${steps}
      `;
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], {
        stdio: ['ignore', unwritable, 'pipe'],
      });
      closeSync(unwritable);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      // Before: the failed write was thrown, and pino's flush at exit retried it for ever.
      const hung = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(hung);
      expect({ code, stderr }).toEqual({
        code: 0,
        stderr: 'log output (fd 1) failed with EBADF: logging stops\n',
      });
    },
    20_000,
  );
});
