import { DatabaseError } from 'pg';
import {
  isDatabaseUnavailable,
  isDatabaseUnreachable,
  isLockConflict,
  isLockTableFull,
  isMissingPartition,
  isPermanentDataError,
  isStatementTimeout,
} from '../../src/stores/database-errors';

/** An error shaped like node-postgres' and knex's: a message and optional code and name. */
const driverError = (fields: { code?: unknown; name?: string; message?: string }) =>
  Object.assign(new Error(fields.message ?? 'failed'), fields);

const MISSING_PARTITION = 'no partition of relation "telemetry_history" found for row';

describe('isDatabaseUnavailable', () => {
  test.each([
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'EPIPE',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ENOTFOUND',
    'EAI_AGAIN',
  ])('when the socket fails with %s, then the database is unavailable', (code) => {
    expect(isDatabaseUnavailable(driverError({ code }))).toBe(true);
  });

  test.each(['08000', '08001', '08003', '08006', '08P01'])(
    'when the SQLSTATE is %s (connection exception), then the database is unavailable',
    (code) => {
      expect(isDatabaseUnavailable(driverError({ code }))).toBe(true);
    },
  );

  test.each([
    ['57P01', 'admin shutdown'],
    ['57P02', 'crash shutdown'],
    ['57P03', 'cannot connect now (starting up)'],
    ['53300', 'too many connections'],
  ])('when the SQLSTATE is %s (%s), then the database is unavailable', (code) => {
    expect(isDatabaseUnavailable(driverError({ code }))).toBe(true);
  });

  test('when knex times out acquiring a connection, then the database is unavailable', () => {
    expect(isDatabaseUnavailable(driverError({ name: 'KnexTimeoutError' }))).toBe(true);
    expect(
      isDatabaseUnavailable(
        driverError({
          message: 'Knex: Timeout acquiring a connection. The pool is probably full.',
        }),
      ),
    ).toBe(true);
  });

  test.each([
    'timeout expired',
    'Connection terminated unexpectedly',
    'Connection terminated due to connection timeout',
    'timeout exceeded when trying to connect',
    'Client has encountered a connection error and is not queryable',
  ])('when node-postgres says %j, then the database is unavailable', (message) => {
    expect(isDatabaseUnavailable(driverError({ message }))).toBe(true);
  });

  test.each([
    [
      'a statement timeout (57014)',
      { code: '57014', message: 'canceling statement due to statement timeout' },
    ],
    ['a unique violation (23505)', { code: '23505' }],
    ['a deadlock (40P01)', { code: '40P01' }],
    ['a file that is not there (ENOENT, not a connect)', { code: 'ENOENT' }],
    ['a message that only contains "timeout expired"', { message: 'lock timeout expired' }],
    ['a numeric code', { code: 8006 }],
    ['a short 08 code', { code: '08' }],
  ])('when the error is %s, then the database is not unavailable', (_, fields) => {
    expect(isDatabaseUnavailable(driverError(fields))).toBe(false);
  });

  test('when a Unix socket is gone (ENOENT on connect: PostgreSQL stopped), then the database is unavailable', () => {
    const err = driverError({ code: 'ENOENT', message: 'connect ENOENT /run/pg/.s.PGSQL.5432' });
    expect(isDatabaseUnavailable(Object.assign(err, { syscall: 'connect' }))).toBe(true);
  });

  test.each([
    ['3D000', 'the database does not exist'],
    ['57P04', 'the database was dropped'],
    ['28000', 'the login is not authorized'],
    ['28P01', 'the password is refused'],
  ])(
    'when the SQLSTATE is %s (%s), then the database is unavailable, though the server answers',
    (code) => {
      expect(isDatabaseUnavailable(driverError({ code }))).toBe(true);
      expect(isDatabaseUnreachable(driverError({ code }))).toBe(false);
    },
  );

  test.each([null, undefined, 'ECONNREFUSED', 42])(
    'when the thrown value is %p, then it is not unavailable',
    (value) => {
      expect(isDatabaseUnavailable(value)).toBe(false);
    },
  );
});

describe('isLockConflict', () => {
  test.each(['40P01', '40001', '55P03'])(
    'when the SQLSTATE is %s, then PostgreSQL set the statement aside for another: sent again, it goes through',
    (code) => {
      expect(isLockConflict(driverError({ code }))).toBe(true);
    },
  );

  test.each([
    ['a statement timeout (57014)', driverError({ code: '57014' })],
    ['a unique violation (23505)', driverError({ code: '23505' })],
    ['null', null],
  ])('when the error is %s, then it is not a lock conflict', (_, err) => {
    expect(isLockConflict(err)).toBe(false);
  });
});

describe('isStatementTimeout', () => {
  test('when the SQLSTATE is 57014, then it is a statement timeout', () => {
    expect(isStatementTimeout(driverError({ code: '57014' }))).toBe(true);
  });

  test.each([
    ['a shutdown (57P01)', driverError({ code: '57P01' })],
    ['a connect timeout', driverError({ message: 'timeout expired' })],
    ['null', null],
  ])('when the error is %s, then it is not a statement timeout', (_, err) => {
    expect(isStatementTimeout(err)).toBe(false);
  });
});

describe('isPermanentDataError', () => {
  test.each([
    ['22P02', 'invalid text representation'],
    ['22003', 'numeric value out of range'],
    ['22008', 'datetime field overflow'],
    ['23505', 'unique violation'],
    ['23514', 'check violation'],
  ])('when the SQLSTATE is %s (%s), then retrying cannot help', (code) => {
    expect(isPermanentDataError(driverError({ code }))).toBe(true);
  });

  test('when the error is a missing partition, then it is not permanent (the partition can be created)', () => {
    const err = driverError({ code: '23514', message: MISSING_PARTITION });
    expect(isMissingPartition(err)).toBe(true);
    expect(isPermanentDataError(err)).toBe(false);
  });

  test.each([
    ['a statement timeout', { code: '57014' }],
    ['a deadlock', { code: '40P01' }],
    ['a connection failure', { code: '08006' }],
    ['a socket error', { code: 'ECONNRESET' }],
    ['a numeric code', { code: 23505 }],
    ['a truncated code', { code: '235' }],
    ['one without a code', {}],
  ])('when the error is %s, then it is not permanent', (_, fields) => {
    expect(isPermanentDataError(driverError(fields))).toBe(false);
  });
});

describe('isMissingPartition', () => {
  test('when the message names no partition for the row, then a partition is missing', () => {
    expect(isMissingPartition(driverError({ message: MISSING_PARTITION }))).toBe(true);
  });

  test.each([
    ['a missing table', driverError({ message: 'relation "x" does not exist' })],
    ['null', null],
    ['undefined', undefined],
  ])('when the error is %s, then no partition is missing', (_, err) => {
    expect(isMissingPartition(err)).toBe(false);
  });
});

describe('isLockTableFull', () => {
  /** What node-postgres gives when the server's lock table is full (seen on PostgreSQL 15). */
  const outOfSharedMemory = (hint: string | undefined) =>
    Object.assign(new DatabaseError('out of shared memory', 0, 'error'), {
      code: '53200',
      hint,
      routine: 'LockAcquireExtended',
    });

  test('when PostgreSQL is out of shared memory for locks, then the lock table is full', () => {
    expect(
      isLockTableFull(outOfSharedMemory('You might need to increase max_locks_per_transaction.')),
    ).toBe(true);
    expect(
      isDatabaseUnavailable(
        outOfSharedMemory('You might need to increase max_locks_per_transaction.'),
      ),
    ).toBe(false);
  });

  test('when 53200 comes without the lock hint (memory for something else), then it is not', () => {
    expect(isLockTableFull(outOfSharedMemory(undefined))).toBe(false);
    expect(isLockTableFull(driverError({ code: '57014' }))).toBe(false);
  });
});
