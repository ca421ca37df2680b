import type { Reading } from '../devices/device-kinds';
import type { RedisClient } from '../redis';
import type { QueueShardKeys } from '../redis-keys';

/**
 * The intake: where small stores of readings go instead of a BullMQ job each.
 *
 * At a thousand single readings a second, group commit stores one or two readings at a time, and a
 * job per store cost the flusher, Redis and PostgreSQL more than its readings did (about 45 Redis
 * commands inside BullMQ's scripts and one statement per job). A small store is instead one list
 * push, counted in the shard's backlog by the same script; a flusher moves the list into jobs of up
 * to QUEUE_BATCH_READINGS readings (workers/intake-mover.ts). A push is as durable as a job: both
 * are writes to the shard's Redis, so a 202 still means stored.
 */

/** Stores of fewer readings go through the intake; larger ones become jobs at once. */
export const INTAKE_BELOW_READINGS = 100;

/** One store as the intake keeps it, numbered in its shard. */
export interface IntakeEntry {
  seq: number;
  acceptedAt: number;
  readings: Reading[];
}

/** Appends `<seq> <json>` and counts the readings in the backlog, atomically. */
const PUSH = `
local seq = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], seq .. ' ' .. ARGV[1])
redis.call('INCRBY', KEYS[3], ARGV[2])
return seq`;

type RedisWithPush = RedisClient & {
  intakePush(
    numKeys: 3,
    list: string,
    seq: string,
    backlog: string,
    entry: string,
    readings: number,
  ): Promise<number>;
};

/** An entry as the push script wrote it; throws for anything else. */
export function parseIntakeEntry(raw: string): IntakeEntry {
  const space = raw.indexOf(' ');
  const seq = Number(raw.slice(0, space));
  const { acceptedAt, readings } = JSON.parse(raw.slice(space + 1)) as Partial<IntakeEntry>;
  if (
    space < 1 ||
    !Number.isInteger(seq) ||
    typeof acceptedAt !== 'number' ||
    !Array.isArray(readings)
  )
    throw new Error('not an intake entry');
  return { seq, acceptedAt, readings };
}

/** Pushes a store into a shard's intake; resolves once Redis has it. */
export type IntakePush = (
  keys: QueueShardKeys,
  acceptedAt: number,
  readings: Reading[],
) => Promise<void>;

export function createIntakePush(redis: RedisClient): IntakePush {
  redis.defineCommand('intakePush', { lua: PUSH });
  const scripted = redis as RedisWithPush;
  return async (keys, acceptedAt, readings) => {
    const entry = JSON.stringify({ acceptedAt, readings });
    await scripted.intakePush(
      3,
      keys.intake,
      keys.intakeSeq,
      keys.backlogReadings,
      entry,
      readings.length,
    );
  };
}

/** Epoch ms at which the oldest store still in a shard's intake was accepted, or null. */
export async function oldestInIntake(
  redis: RedisClient,
  keys: QueueShardKeys,
): Promise<number | null> {
  const head = await redis.lindex(keys.intake, 0);
  try {
    return head === null ? null : parseIntakeEntry(head).acceptedAt;
  } catch {
    return null; // not ours: the mover drops it
  }
}
