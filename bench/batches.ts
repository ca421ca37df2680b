/**
 * The bench's ingest bodies (10,000 meters and 10,000 vehicles, a reading a minute each, from three
 * days ago), how fast a flusher drains them, and the COPY ceiling it is held against: for
 * `npm run bench` and `npm run bench:flush`.
 */
import { execFileSync } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import knex from 'knex';
import type { QueueShardKeys } from '../src/redis-keys';
import { sleep } from './bench-helpers';

export const DEVICES = 10_000;

/** Load timestamps start three days ago, so every phase stays in the past (and fresh partitions). */
export const loadBase = () => Math.floor(Date.now() / 60_000) * 60_000 - 3 * 86_400_000;

export function meterJson(n: number, base: number): string {
  const device = n % DEVICES;
  const minute = Math.floor(n / DEVICES);
  return `{"meterId":"M-${device}","kwhConsumedAc":0.0167,"voltage":230,"timestamp":"${new Date(base + minute * 60_000).toISOString()}"}`;
}

export function vehicleJson(n: number, base: number): string {
  const device = n % DEVICES;
  const minute = Math.floor(n / DEVICES);
  return `{"vehicleId":"V-${device}","soc":${50 + (minute % 50)},"kwhDeliveredDc":0.015,"batteryTemp":31.5,"timestamp":"${new Date(base + minute * 60_000).toISOString()}"}`;
}

/** 1,000 mixed readings from reading number `n` on. */
export function batchJson(n: number, base: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 500; i++) parts.push(meterJson(n + i, base), vehicleJson(n + i, base));
  return `[${parts.join(',')}]`;
}

/** Devices a backfill body holds, each with BACKFILL_MINUTES readings (1,000 readings in all). */
const BACKFILL_DEVICES = 50;
const BACKFILL_MINUTES = 20;

/**
 * The `request`th body of a gateway's backfill: 25 meters and 25 vehicles (ids of their own), 20
 * minutes of each, in device order as a gateway's buffer holds them; the next body the next 50.
 */
export function backfillJson(request: number, base: number): string {
  const parts: string[] = [];
  for (let minute = 0; minute < BACKFILL_MINUTES; minute++) {
    const ts = new Date(base + ((request * BACKFILL_MINUTES + minute) % 4000) * 60_000);
    for (let d = 0; d < BACKFILL_DEVICES; d += 2) {
      const device = `BF-${(request * BACKFILL_DEVICES + d) % DEVICES}`;
      parts.push(
        `{"meterId":"M-${device}","kwhConsumedAc":0.0167,"voltage":230,"timestamp":"${ts.toISOString()}"}`,
        `{"vehicleId":"V-${device}","soc":55,"kwhDeliveredDc":0.015,"batteryTemp":31.5,"timestamp":"${ts.toISOString()}"}`,
      );
    }
  }
  return `[${parts.join(',')}]`;
}

export const INGEST_PATH = '/v1/telemetry/ingest';
export const JSON_HEADERS = { 'content-type': 'application/json' };

/** Autocannon requests posting to the ingest endpoint, each with the body `next()` makes. */
export function ingestRequests(next: () => string) {
  return [
    {
      method: 'POST' as const,
      path: INGEST_PATH,
      headers: JSON_HEADERS,
      setupRequest: (req: autocannon.Request) => ({ ...req, body: next() }),
    },
  ];
}

/** Batch requests of 1,000 mixed readings. */
export function batchRequests(startAt: number, base: number) {
  let n = startAt;
  return ingestRequests(() => batchJson((n += 500), base));
}

export interface CopyResult {
  rows: number;
  rowsPerS: number;
}

/** PostgreSQL `COPY` of `rows` such readings into a table with history's columns and primary key. */
export async function copyCeiling(databaseUrl: string, rows: number): Promise<CopyResult> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  await db.raw('DROP TABLE IF EXISTS bench_copy');
  await db.raw(
    `CREATE TABLE bench_copy (LIKE telemetry_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
  );
  await db.raw('ALTER TABLE bench_copy ADD PRIMARY KEY (device_type, device_id, ts)');
  const file = path.join(os.tmpdir(), `bench-copy-${process.pid}.csv`);
  const base = loadBase();
  const lines: string[] = [];
  const received = new Date().toISOString();
  for (let n = 0; n < rows; n += 2) {
    const ts = new Date(base + Math.floor(n / DEVICES) * 60_000).toISOString();
    lines.push(`meter,M-${n % DEVICES},${ts},0.0167,230,,,,${received}`);
    lines.push(`vehicle,V-${n % DEVICES},${ts},,,55,0.015,31.5,${received}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  const started = process.hrtime.bigint();
  execFileSync('psql', [databaseUrl, '-q', '-c', `\\copy bench_copy FROM '${file}' CSV`]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  unlinkSync(file);
  await db.raw('DROP TABLE bench_copy');
  await db.destroy();
  return { rows: lines.length, rowsPerS: lines.length / seconds };
}

/** Readings accepted but not yet flushed, over `shards` (their backlog counters). */
async function backlogOf(redis: Redis, shards: QueueShardKeys[]): Promise<number> {
  const counts = await Promise.all(
    shards.map((shard) =>
      redis.get(shard.backlogReadings).then((n) => Math.max(0, Number(n ?? 0))),
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Waits until `shards` hold no backlog and no job; when that was. */
export async function waitUntilDrained(
  redis: Redis,
  shards: QueueShardKeys[],
  timeoutMs = 600_000,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const pending = await Promise.all(
      shards.flatMap((shard) => [
        redis.get(shard.backlogReadings).then((n) => Math.max(0, Number(n ?? 0))),
        redis.llen(shard.queueKey('wait')),
        redis.llen(shard.queueKey('active')),
        redis.zcard(shard.queueKey('delayed')),
      ]),
    );
    if (pending.every((n) => n === 0)) return Date.now();
    await sleep(50);
  }
  throw new Error('backlog did not drain');
}

/**
 * Rows made durable per second by a flusher started on a backlog: from the first sample where the
 * backlog has shrunk to the queue being empty, the rows flushed in between.
 */
export async function flushRate(
  redis: Redis,
  shards: QueueShardKeys[],
): Promise<{ rows: number; seconds: number }> {
  const initial = await backlogOf(redis, shards);
  if (initial === 0) return { rows: 0, seconds: NaN };
  let first: { at: number; backlog: number } | null = null;
  while (!first) {
    const backlog = await backlogOf(redis, shards);
    if (backlog < initial) first = { at: Date.now(), backlog };
    else await sleep(20);
  }
  const drainedAt = await waitUntilDrained(redis, shards);
  return { rows: first.backlog, seconds: (drainedAt - first.at) / 1000 };
}
