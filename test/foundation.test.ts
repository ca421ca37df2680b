import { createDb } from '../db/create-db';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import request from 'supertest';
import { freePort } from '../bench/bench-helpers';
import {
  ensureDatabase,
  migrateToLatest,
  pendingMigrations,
  rollbackAll,
  withMaintenanceClient,
} from '../db/migrate';
import { ConfigError, loadConfig } from '../src/config';
import { createRedis, waitForRedis } from '../src/redis';
import { PROCESS_ENV_DEFAULTS } from '../src/lifecycle';
import { createFlusher } from '../workers/flusher-service';
import { openQueue, startTestApi, startTestFlusher, waitFor, type TestApi } from './helpers/engine';
import type { IngestJobData } from '../src/queue/ingest-queue';
import { envFor, startProcess } from './helpers/processes';
import {
  baseDatabaseUrl,
  baseRedisUrl,
  createTestContext,
  deleteKeys,
  withDatabaseName,
  type TestContext,
} from './helpers/test-env';

/** Runs a TypeScript entry point as its own process and collects its output and exit code. */
async function runEntry(entry: string, env: Record<string, string>, timeoutMs = 20_000) {
  const started = Date.now();
  const run = startProcess(entry, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const code = await run.exited;
  clearTimeout(timer);
  return { code, output: run.output(), ms: Date.now() - started };
}

describe('configuration', () => {
  test('when nothing is set, then the documented local defaults apply', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/energy',
      redisUrl: 'redis://127.0.0.1:6379',
      port: 3000,
      flusherPort: 9464,
      redisPrefix: 'energy',
      logLevel: 'info',
      maxBatchReadings: 5000,
      bodyLimitBytes: 4 * 1024 * 1024,
      queueBatchReadings: 1000,
      maxBacklogReadings: 1_000_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  test('when variables are invalid, then one error names every bad variable and what it expects', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        REDIS_URL: 'http://x',
        LOG_LEVEL: 'loud',
        BODY_LIMIT: '4 gigs',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/PORT="eighty": expected an integer from 0 to 65535/);
    expect(message).toMatch(/REDIS_URL="http:\/\/x": expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(message).toMatch(/LOG_LEVEL="loud": expected one of/);
    expect(message).toMatch(/BODY_LIMIT/);
  });
});

describe('schema migrations', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.cleanup());

  test('when migrated, then history is partitioned by time (the flusher makes the partitions, see partitions.test.ts) and status tables use fillfactor 50', async () => {
    const parts = await ctx.db.raw(`
      SELECT pg_get_partkeydef('telemetry_history'::regclass) AS key`);
    expect(parts.rows[0].key).toBe('RANGE (ts)');
    const key = await ctx.db.raw(`
      SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
      WHERE conrelid = 'telemetry_history'::regclass AND contype = 'p'`);
    expect(key.rows[0].def).toBe('PRIMARY KEY (device_type, device_id, ts)');
    const options = await ctx.db.raw(`
      SELECT relname, reloptions FROM pg_class WHERE relname IN ('meter_status', 'vehicle_status')`);
    for (const row of options.rows) expect(row.reloptions).toContain('fillfactor=50');
  });

  test('when rolled back completely and migrated again, then the schema comes back', async () => {
    const reverted = await rollbackAll(ctx.db);
    expect(reverted.length).toBeGreaterThan(0);
    const gone = await ctx.db.raw(`SELECT to_regclass('telemetry_history') AS t`);
    expect(gone.rows[0].t).toBeNull();
    const applied = await migrateToLatest(ctx.db);
    expect(applied).toEqual(reverted.slice().reverse());
    const back = await ctx.db.raw(`SELECT to_regclass('telemetry_history') AS t`);
    expect(back.rows[0].t).toBe('telemetry_history');
  });
});

describe('health', () => {
  let ctx: TestContext;
  let engine: TestApi;
  beforeAll(async () => {
    ctx = await createTestContext();
    engine = await startTestApi(ctx);
  });
  afterAll(async () => {
    await engine.close();
    await ctx.cleanup();
  });

  test('when PostgreSQL and Redis work, then the API is live and ready', async () => {
    await request(engine.api.app).get('/health/live').expect(200, { status: 'live' });
    const ready = await request(engine.api.app).get('/health/ready').expect(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  test('when the flusher has not started its workers yet (it serves health first), then it is not ready', async () => {
    const db = createDb(ctx.config);
    const redis = createRedis(ctx.config, 'command');
    const workerConnection = createRedis(ctx.config, 'blocking');
    try {
      await waitForRedis(redis, 3000);
      const flusher = createFlusher({
        config: ctx.config,
        db,
        redis,
        workerConnection,
        logger: ctx.logger,
      });
      const ready = await request(flusher.healthApp).get('/health/ready').expect(503);
      expect(ready.body.checks.worker).toMatch(/not running/);
      await flusher.close();
    } finally {
      redis.disconnect();
      workerConnection.disconnect();
      await db.destroy();
    }
  });

  test('when the flusher runs, then its health app reports ready including its worker', async () => {
    const flusher = await startTestFlusher(ctx);
    try {
      const ready = await request(flusher.flusher.healthApp).get('/health/ready').expect(200);
      expect(ready.body.checks).toEqual({
        postgres: 'ok',
        redis: 'ok',
        workerRedis: 'ok',
        worker: 'ok',
      });
      // Refused as the API refuses: JSON, no stack.
      const wrong = await request(flusher.flusher.healthApp).post('/metrics').expect(405);
      expect(wrong.body).toMatchObject({ error: 'method_not_allowed' });
      const unknown = await request(flusher.flusher.healthApp).get('/nope').expect(404);
      expect(unknown.body).toMatchObject({ error: 'not_found' });
      expect(unknown.text).not.toMatch(/ at /);
    } finally {
      await flusher.close();
    }
  });

  test('when an unknown route is asked for, then the answer is a JSON 404', async () => {
    const res = await request(engine.api.app).get('/nope').expect(404);
    expect(res.body.error).toBe('not_found');
  });

  test('when a route is asked with a method it does not have, then the answer is a 405 naming the methods it has', async () => {
    const post = await request(engine.api.app).post('/v1/analytics/fleet').send({}).expect(405);
    expect(post.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect(post.body).toEqual({
      error: 'method_not_allowed',
      message: 'POST is not allowed on /v1/analytics/fleet; it allows GET, HEAD, OPTIONS',
      details: [],
    });
    const del = await request(engine.api.app).delete('/v1/telemetry/ingest').expect(405);
    expect(del.headers.allow).toBe('POST, OPTIONS');
    // One path, several methods (a path parameter filled in): all of them named.
    const patch = await request(engine.api.app).patch('/v1/id-tags/TAG-1').expect(405);
    expect(patch.headers.allow?.split(', ').sort()).toEqual(
      ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PUT'].sort(),
    );
    const options = await request(engine.api.app).options('/v1/analytics/fleet').expect(204);
    expect(options.headers.allow).toBe('GET, HEAD, OPTIONS');
    // A method the path has still reaches its route.
    await request(engine.api.app).head('/health/live').expect(200);
    // The same for what is served beside the declared routes: the API document, docs, dashboard.
    for (const path of ['/openapi.json', '/docs', '/dashboard']) {
      const wrong = await request(engine.api.app).post(path).expect(405);
      expect([wrong.headers.allow, wrong.body.error]).toEqual([
        'GET, HEAD, OPTIONS',
        'method_not_allowed',
      ]);
      await request(engine.api.app).options(path).expect(204).expect('Allow', 'GET, HEAD, OPTIONS');
    }
    await request(engine.api.app).get('/openapi.json').expect(200);
  });
});

describe('start-up on a port already in use', () => {
  let ctx: TestContext;
  let busy: net.Server;
  let port: number;
  beforeAll(async () => {
    ctx = await createTestContext();
    busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    port = (busy.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => busy.close(resolve));
    await ctx.cleanup();
  });

  test.each([
    ['the API', 'src/server.ts', 'PORT'],
    ['the flusher', 'workers/flusher.ts', 'FLUSHER_PORT'],
  ])(
    'when %s is given a port in use, then it exits naming the port and its setting',
    async (_, entry, setting) => {
      const result = await runEntry(entry, envFor(ctx.config, { [setting]: String(port) }));
      expect(result.code).toBe(1);
      expect(result.output).toMatch(
        new RegExp(
          `port ${port} \\(${setting}\\) is already in use: stop what listens there, or set ${setting} to a free port`,
        ),
      );
      expect(result.output).not.toMatch(/\n\s+at /); // no stack trace
    },
  );

  test('when the flusher is given a port in use, then it exits before taking a job from the queue', async () => {
    const queue = openQueue(ctx.redis, ctx.config.redisPrefix);
    try {
      const reading = { type: 'meter', id: 'M-port', ts: Date.parse('2024-03-20T10:00:00Z') };
      await queue.add('readings', {
        acceptedAt: Date.now(),
        readings: [{ ...reading, kwhConsumedAc: 1, voltage: 230 }],
      } as unknown as IngestJobData);
      const result = await runEntry(
        'workers/flusher.ts',
        envFor(ctx.config, { FLUSHER_PORT: String(port) }),
      );
      expect(result.code).toBe(1);
      expect(await queue.getJobCounts('waiting', 'active', 'completed', 'failed')).toMatchObject({
        waiting: 1,
        active: 0,
        completed: 0,
        failed: 0,
      });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});

describe('npm start going away', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.cleanup());

  const answers = (url: string) =>
    fetch(url).then(
      () => true,
      () => false,
    );

  /** The API's and the flusher's /health/live on these ports. */
  const liveOn = (ports: number[]) => ports.map((p) => `http://127.0.0.1:${p}/health/live`);

  /** Resolves once both answer (npm start compiles and migrates first: slow on a loaded machine). */
  const bothAnswer = (live: string[]) =>
    waitFor(
      async () => (await answers(live[0])) && (await answers(live[1])),
      120_000,
      'the API and the flusher to answer',
    );

  /** npm start on free ports, once its API and flusher both answer; `live`: their /health/live. */
  async function startedEngine() {
    const [port, flusherPort] = [await freePort(), await freePort()];
    const start = startProcess(
      'scripts/start.ts',
      envFor(ctx.config, { PORT: String(port), FLUSHER_PORT: String(flusherPort) }),
    );
    const live = liveOn([port, flusherPort]);
    try {
      await bothAnswer(live);
    } catch (err) {
      start.child.kill('SIGKILL');
      throw err;
    }
    return { start, live };
  }

  test.each(['SIGKILL', 'SIGHUP'] as const)(
    'when npm start is ended by %s, then the API and the flusher it started stop too, not left holding the ports',
    async (signal) => {
      const { start, live } = await startedEngine();
      try {
        start.child.kill(signal);
        await waitFor(
          async () => !(await answers(live[0])) && !(await answers(live[1])),
          20_000,
          'the API and the flusher to stop',
        );
      } finally {
        start.child.kill('SIGKILL');
        await start.exited;
      }
    },
    // npm start compiles and migrates before both answer: slow on a loaded machine.
    150_000,
  );

  test("when npm start runs in a terminal, then its processes log through it, not to the terminal, start with the engine's environment defaults, and stop with it when it closes", async () => {
    const [port, flusherPort] = [await freePort(), await freePort()];
    const env = {
      ...process.env,
      ...envFor(ctx.config, {
        PORT: String(port),
        FLUSHER_PORT: String(flusherPort),
        LOG_LEVEL: 'info',
      }),
    };
    const entry = path.join(__dirname, '..', 'scripts', 'start.ts');
    // `script` runs it in a terminal of its own (a pseudo-terminal), closed when it is killed.
    const terminal = spawn(
      'script',
      ['-qfec', `${process.execPath} --import tsx ${entry}`, '/dev/null'],
      {
        env,
      },
    );
    let output = '';
    terminal.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const live = liveOn([port, flusherPort]);
    try {
      await bothAnswer(live);
      const pids = [...output.matchAll(/"childPid":(\d+)/g)].map((m) => m[1]);
      expect(pids).toHaveLength(2);
      // Node restores a terminal's settings at exit: with the terminal closed, that aborted them.
      const terminals = pids.flatMap((pid) =>
        [0, 1, 2]
          .map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`))
          .filter((f) => f.startsWith('/dev/pts/')),
      );
      expect(terminals).toEqual([]);
      expect(output).toMatch(/"name":"api".*"msg":"API listening/);
      // Unless its environment sets them, both start with the engine's defaults (MALLOC_ARENA_MAX).
      for (const pid of pids) {
        const environment = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        for (const [name, value] of Object.entries(PROCESS_ENV_DEFAULTS)) {
          expect(environment).toContain(`${name}=${process.env[name] ?? value}`);
        }
      }
    } finally {
      terminal.kill('SIGKILL');
    }
    await waitFor(
      async () => !(await answers(live[0])) && !(await answers(live[1])),
      20_000,
      'the API and the flusher to stop',
    );
  }, 150_000);

  test('when npm start is asked to stop again (its processes then exit at once, not cleanly), then it exits 1; one stop delivered twice at once (a terminal and npm) is one clean stop: 0', async () => {
    const { start } = await startedEngine();
    try {
      start.child.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 100)); // once its processes are stopping
      start.child.kill('SIGTERM');
      expect(await start.exited).toBe(1);
    } finally {
      start.child.kill('SIGKILL');
    }
    const { start: again } = await startedEngine();
    try {
      again.child.kill('SIGINT');
      again.child.kill('SIGINT');
      expect(await again.exited).toBe(0);
    } finally {
      again.child.kill('SIGKILL');
    }
  }, 300_000);
});

describe('start-up without PostgreSQL or Redis', () => {
  const closedPort = '1'; // nothing listens on port 1 here
  // The processes that reach Redis write keys under a prefix of their own: deleted after.
  const prefixes: string[] = [];
  const ownPrefix = () => {
    prefixes.push(`test-nopg-${Date.now().toString(36)}-${prefixes.length}`);
    return { REDIS_URL: baseRedisUrl(), REDIS_PREFIX: prefixes[prefixes.length - 1] };
  };
  afterAll(async () => {
    const redis = createRedis(loadConfig({ REDIS_URL: baseRedisUrl() }), 'command');
    try {
      await waitForRedis(redis, 3000);
      for (const prefix of prefixes) await deleteKeys(redis, prefix);
    } finally {
      redis.disconnect();
    }
  });

  test('when PORT and FLUSHER_PORT are one port, then npm start (both processes on one host) refuses it at once, naming FLUSHER_PORT', async () => {
    const result = await runEntry('scripts/start.ts', {
      PORT: '3841',
      FLUSHER_PORT: '3841',
      AUTH: 'off',
    });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/FLUSHER_PORT=3841: expected another port than PORT's/);
    expect(result.output).not.toMatch(/\n\s+at /);
  });

  test('when PostgreSQL is unreachable, then npm start (which migrates) exits fast naming PostgreSQL, its URL and how to get it', async () => {
    const result = await runEntry('scripts/start.ts', {
      DATABASE_URL: `postgres://postgres:secret@127.0.0.1:${closedPort}/energy`,
      PORT: '0',
      AUTH: 'off',
    });
    expect(result.code).toBe(1);
    expect(result.ms).toBeLessThan(15_000);
    expect(result.output).toMatch(
      /PostgreSQL is not reachable at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/energy/,
    );
    expect(result.output).toMatch(/apt-get install -y postgresql/);
    expect(result.output).toMatch(/docker compose up -d postgres/);
    expect(result.output).not.toMatch(/secret/);
    expect(result.output).not.toMatch(/\n\s+at /); // no stack trace
  });

  test('when PostgreSQL is unreachable, then the API starts anyway, says so once, accepts ingest and answers reads 503', async () => {
    const api = startProcess('src/server.ts', {
      DATABASE_URL: `postgres://postgres:secret@127.0.0.1:${closedPort}/energy`,
      ...ownPrefix(),
      PORT: '0',
      AUTH: 'off',
      LOG_LEVEL: 'info',
    });
    try {
      await waitFor(async () => /API listening/.test(api.output()), 20_000, 'the API to listen');
      const port = /"port":(\d+)/.exec(api.output())?.[1];
      const url = `http://127.0.0.1:${port}`;
      const lines = api.output().split('\n');
      expect(lines.filter((l) => /PostgreSQL is not reachable/.test(l))).toHaveLength(1);
      await request(url)
        .post('/v1/telemetry/ingest')
        .send({ meterId: 'M-1', kwhConsumedAc: 1, timestamp: '2024-03-20T10:00:00Z' })
        .expect(202);
      const read = await request(url).get('/v1/analytics/performance/V-1').expect(503);
      expect(read.body.error).toBe('database_unavailable');
      await request(url).get('/health/ready/ingest').expect(200);
      expect(api.output()).not.toMatch(/secret/);
    } finally {
      api.child.kill('SIGTERM');
      expect(await api.exited).toBe(0);
    }
  });

  test('when PostgreSQL is unreachable, then the flusher starts paused and stays up', async () => {
    const flusher = startProcess('workers/flusher.ts', {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/energy`,
      ...ownPrefix(),
      FLUSHER_PORT: '0',
      LOG_LEVEL: 'info',
    });
    try {
      await waitFor(
        async () => /flusher paused/.test(flusher.output()),
        20_000,
        'the flusher to pause',
      );
      await new Promise((r) => setTimeout(r, 1000));
      expect(flusher.child.exitCode).toBeNull();
    } finally {
      flusher.child.kill('SIGTERM');
      await flusher.exited;
    }
  });

  test('when Redis is unreachable, then the flusher exits fast naming Redis and its URL', async () => {
    const result = await runEntry('workers/flusher.ts', {
      REDIS_URL: `redis://127.0.0.1:${closedPort}`,
      FLUSHER_PORT: '0',
    });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/Redis is not reachable at redis:\/\/127\.0\.0\.1:1/);
    expect(result.output).toMatch(/apt-get install -y redis-server/);
    expect(result.output).not.toMatch(/\n\s+at /);
  });

  test('when the database is not migrated, then the flusher and the API refuse to start, saying to run npm run migrate', async () => {
    const name = `energy_unmigrated_${process.pid}`;
    const url = withDatabaseName(baseDatabaseUrl(), name);
    await withMaintenanceClient(url, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const env = { DATABASE_URL: url, AUTH: 'off' };
      for (const entry of ['workers/flusher.ts', 'src/server.ts']) {
        const result = await runEntry(entry, { ...env, FLUSHER_PORT: '0', PORT: '0' });
        expect({ entry, code: result.code }).toEqual({ entry, code: 1 });
        expect(result.output).toMatch(
          /lacks \d+ migration\(s\) \(first: \d+_[\w-]+\.js\): run npm run migrate/,
        );
      }
    } finally {
      await withMaintenanceClient(url, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
      );
    }
  });

  test('when the database does not exist, then the flusher and the API refuse to start, saying to run npm run migrate', async () => {
    const url = withDatabaseName(baseDatabaseUrl(), `energy_missing_${process.pid}`);
    for (const entry of ['workers/flusher.ts', 'src/server.ts']) {
      const result = await runEntry(entry, {
        DATABASE_URL: url,
        AUTH: 'off',
        FLUSHER_PORT: '0',
        PORT: '0',
      });
      expect({ entry, code: result.code }).toEqual({ entry, code: 1 });
      expect(result.output).toMatch(/energy_missing_\d+ does not exist: run npm run migrate/);
    }
  });

  test('when migrations were recorded under their TypeScript names (npm run dev before), then migrating applies nothing and renames them as compiled code names them', async () => {
    const name = `energy_renamed_${process.pid}`;
    const url = withDatabaseName(baseDatabaseUrl(), name);
    await ensureDatabase(url);
    const db = createDb(loadConfig({ DATABASE_URL: url }));
    try {
      const applied = await migrateToLatest(db);
      expect(applied.every((m) => m.endsWith('.js'))).toBe(true);
      await db('knex_migrations').update({ name: db.raw(`replace(name, '.js', '.ts')`) });
      expect(await migrateToLatest(db)).toEqual([]);
      expect(await pendingMigrations(db)).toEqual([]);
      const names = (await db('knex_migrations').pluck('name')) as string[];
      expect(names).toEqual(applied);
    } finally {
      await db.destroy();
      await withMaintenanceClient(url, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
      );
    }
  });

  test('when a later release migrated the database (a rollback), then migrating applies nothing and says so, and a migration missing among its own is still refused', async () => {
    const name = `energy_rolled_back_${process.pid}`;
    const url = withDatabaseName(baseDatabaseUrl(), name);
    await ensureDatabase(url);
    const db = createDb(loadConfig({ DATABASE_URL: url }));
    try {
      await migrateToLatest(db);
      const later = '29991231000000_of-a-later-release.js';
      await db('knex_migrations').insert({ name: later, batch: 99, migration_time: new Date() });
      expect(await migrateToLatest(db)).toEqual([]);
      expect(await pendingMigrations(db)).toEqual([]);
      const result = await runEntry('scripts/migrate.ts', { DATABASE_URL: url });
      expect(result.code).toBe(0);
      expect(result.output).toContain(
        `the schema is newer than this release (a rollback): 1 migration(s) of a later release applied, up to ${later}`,
      );
      // One sorting among this release's own is no later release's: its file is missing here.
      await db('knex_migrations').insert({
        name: '20000101000000_gone.js',
        batch: 99,
        migration_time: new Date(),
      });
      await expect(migrateToLatest(db)).rejects.toThrow(
        "The migration directory is corrupt: the database records migrations that sort among this release's own and have no file here: 20000101000000_gone.js",
      );
    } finally {
      await db.destroy();
      await withMaintenanceClient(url, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
      );
    }
  });

  test('when REDIS_URL names a database index Redis does not have, then the flusher refuses to start, naming it (ioredis would go on with database 0)', async () => {
    const result = await runEntry('workers/flusher.ts', {
      REDIS_URL: 'redis://127.0.0.1:6379/99',
      FLUSHER_PORT: '0',
    });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(
      /REDIS_URL names the database 99, which the Redis at .* does not have/,
    );
    expect(result.output).not.toMatch(/\n\s+at /);
  });

  test('when Redis refuses the credentials, then the flusher says so at once, not that Redis is unreachable', async () => {
    const result = await runEntry('workers/flusher.ts', {
      REDIS_URL: 'redis://nosuchuser:wrongpw@127.0.0.1:6379',
      FLUSHER_PORT: '0',
    });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(
      /Redis at redis:\/\/nosuchuser:\*\*\*@127\.0\.0\.1:6379\/? refused the credentials \(.*WRONGPASS/,
    );
    expect(result.output).not.toMatch(/not reachable|apt-get/);
  });

  test('when PostgreSQL refuses the login, then npm start says so at once, not that PostgreSQL is unreachable', async () => {
    const result = await runEntry('scripts/start.ts', {
      DATABASE_URL: 'postgres://nosuchrole:secret@127.0.0.1:5432/energy',
      PORT: '0',
      AUTH: 'off',
    });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(
      /PostgreSQL at postgres:\/\/nosuchrole:\*\*\*@127\.0\.0\.1:5432\/energy refused the login \(.*nosuchrole/,
    );
    expect(result.output).not.toMatch(/not reachable|apt-get|secret/);
  });

  test('when PostgreSQL refuses the login, then the API and the flusher refuse to start (an outage they would ride out, a wrong setting not)', async () => {
    for (const entry of ['src/server.ts', 'workers/flusher.ts']) {
      const result = await runEntry(entry, {
        DATABASE_URL: 'postgres://nosuchrole:secret@127.0.0.1:5432/energy',
        PORT: '0',
        FLUSHER_PORT: '0',
        AUTH: 'off',
      });
      expect({ entry, code: result.code }).toEqual({ entry, code: 1 });
      expect(result.output).toMatch(/refused the login \(.*nosuchrole/);
      expect(result.output).not.toMatch(/not reachable|ingest works|secret/);
    }
  });

  test('when DATABASE_URL asks for SSL and PostgreSQL has none, then the API refuses to start, saying so (a setting to fix, not an outage to ride out)', async () => {
    // A server without SSL answers a client's SSLRequest (8 bytes) with a single N.
    const noSsl = net.createServer((socket) => socket.once('data', () => socket.write('N')));
    await new Promise<void>((resolve) => noSsl.listen(0, '127.0.0.1', resolve));
    const { port } = noSsl.address() as net.AddressInfo;
    try {
      const result = await runEntry('src/server.ts', {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/energy?sslmode=require`,
        PORT: '0',
        FLUSHER_PORT: '0',
        AUTH: 'off',
      });
      expect(result.code).toBe(1);
      expect(result.output).toMatch(/does not accept SSL, which DATABASE_URL asks for/);
      expect(result.output).not.toMatch(/not reachable|ingest works/);
    } finally {
      noSsl.close();
    }
  });

  test('when no API key is configured and AUTH is not off, then the API refuses to start, saying what to do', async () => {
    const result = await runEntry('src/server.ts', { PORT: '0', API_KEYS: '', AUTH: '' });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/API_KEYS is empty: create a key with `npm run key/);
    expect(result.output).toMatch(/AUTH=off/);
  });

  test('when a variable is invalid, then migrate exits naming it', async () => {
    const result = await runEntry('scripts/migrate.ts', { DATABASE_URL: 'mysql://x' });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(
      /DATABASE_URL="mysql:\/\/x": expected a postgres:\/\/ or postgresql:\/\/ URL/,
    );
  });

  test.each(['scripts/migrate.ts', 'scripts/start.ts', 'scripts/redrive.ts'])(
    'when a setting is misspelled, then %s says which setting was meant before it acts',
    async (entry) => {
      // Nothing reachable: each stops at its first step, after the warning.
      const result = await runEntry(entry, {
        DATABSE_URL: 'postgres://127.0.0.1:1/other',
        DATABASE_URL: 'postgres://127.0.0.1:1/energy',
        REDIS_URL: 'redis://127.0.0.1:1',
      });
      expect(result.code).toBe(1);
      expect(result.output).toContain(
        'DATABSE_URL is not a setting (ignored): did you mean DATABASE_URL?',
      );
    },
  );
});
