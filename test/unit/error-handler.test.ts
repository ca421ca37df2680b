import request from 'supertest';
import { DatabaseError } from 'pg';
import { Type } from '@sinclair/typebox';
import { createLogger } from '../../src/logger';
import { createServiceApp } from '../../src/http/service-app';
import { defineRoute } from '../../src/http/route-contract';
import { serviceUnavailable } from '../../src/errors';
import { capturingLogger } from '../helpers/capturing-logger';

/** An app of one route that fails with `err` (or what it makes), answered as the API answers it. */
const failingWith = (err: unknown, logger = createLogger({ level: 'silent', name: 'test' })) =>
  createServiceApp(
    [
      defineRoute({
        method: 'get',
        path: '/fails',
        operationId: 'fails',
        summary: 'fails',
        database: true,
        responses: { 200: { description: 'never', schema: Type.Object({}) } },
        handler: () => {
          throw typeof err === 'function' ? (err as () => unknown)() : err;
        },
      }),
    ],
    logger,
  );

describe('database errors as answers', () => {
  test("when PostgreSQL's lock table is full, then 503 database_busy names the cause and the remedy", async () => {
    const full = Object.assign(new DatabaseError('out of shared memory', 0, 'error'), {
      code: '53200',
      hint: 'You might need to increase max_locks_per_transaction.',
    });
    const res = await request(failingWith(full)).get('/fails').expect(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).toMatchObject({
      error: 'database_busy',
      message: expect.stringContaining('max_locks_per_transaction'),
    });
  });

  test('when a statement fails otherwise, then it is a 500 that says nothing of the driver', async () => {
    const other = Object.assign(new DatabaseError('out of memory', 0, 'error'), { code: '53200' });
    const res = await request(failingWith(other)).get('/fails').expect(500);
    expect(res.body.error).toBe('internal_error');
    expect(JSON.stringify(res.body)).not.toContain('out of memory');
  });
});

describe('an outage under load', () => {
  test('when every request meets PostgreSQL away, then each gets its 503 and the log has one line an interval, not one a request', async () => {
    const { logger, lines } = capturingLogger();
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
      code: 'ECONNREFUSED',
    });
    const app = failingWith(refused, logger);
    for (let i = 0; i < 20; i += 1) {
      const res = await request(app).get('/fails').expect(503);
      expect(res.body.error).toBe('database_unavailable');
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ code: 'database_unavailable', url: '/fails' });
  });

  test('when the refusals name a figure that changes (the backlog), then they are still one line an interval', async () => {
    const { logger, lines } = capturingLogger();
    let backlog = 1_000_000;
    const app = failingWith(
      () => serviceUnavailable('backlog_full', `The backlog holds ${(backlog += 7)} readings`, 1),
      logger,
    );
    for (let i = 0; i < 20; i += 1) await request(app).get('/fails').expect(503);
    expect(lines.map((l) => l.code)).toEqual(['backlog_full']);
  });
});
