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
