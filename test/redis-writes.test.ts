import { Redis } from 'ioredis';
import { inOneWrite } from '../src/redis';
import { baseRedisUrl } from './helpers/test-env';

type Socket = Redis['stream'] & {
  _write: (chunk: unknown, encoding: string, cb: () => void) => void;
  _writev: (chunks: unknown[], cb: () => void) => void;
};

/** Commands per socket write from now on: [2] is one write of two commands. */
function recordWrites(redis: Redis): number[] {
  const socket = redis.stream as Socket;
  const writes: number[] = [];
  const write = socket._write.bind(socket);
  const writev = socket._writev.bind(socket);
  socket._write = (chunk, encoding, cb) => {
    writes.push(1);
    write(chunk, encoding, cb);
  };
  socket._writev = (chunks, cb) => {
    writes.push(chunks.length);
    writev(chunks, cb);
  };
  return writes;
}

const key = `test:one-write:${process.pid}`;
let redis: Redis;

beforeEach(async () => {
  redis = new Redis(baseRedisUrl());
  await redis.del(key);
});
afterEach(async () => {
  await redis.del(key);
  redis.disconnect();
});

describe('inOneWrite', () => {
  it('sends the commands issued inside it in one socket write, each with its own answer', async () => {
    const writes = recordWrites(redis);
    const answers = await Promise.all(
      inOneWrite(redis, () => [redis.set(key, '1'), redis.incr(key), redis.get(key)]),
    );
    expect(answers).toEqual(['OK', 2, '2']);
    expect(writes).toEqual([3]);
  });

  it('is what joins them: without it each command is a write of its own', async () => {
    const writes = recordWrites(redis);
    await Promise.all([redis.set(key, '1'), redis.incr(key)]);
    expect(writes).toEqual([1, 1]);
  });

  it('sends what was issued and leaves the socket uncorked when the caller throws', async () => {
    let sent: Promise<unknown> | undefined;
    expect(() =>
      inOneWrite(redis, () => {
        sent = redis.set(key, 'sent');
        throw new Error('failed after the first command');
      }),
    ).toThrow('failed after the first command');
    expect(redis.stream.writableCorked).toBe(0);
    await expect(sent).resolves.toBe('OK');
    expect(await redis.get(key)).toBe('sent');
  });

  it('runs the caller on a connection that has never connected', async () => {
    const lazy = new Redis(baseRedisUrl(), { lazyConnect: true });
    try {
      expect(inOneWrite(lazy, () => 'ran')).toBe('ran');
    } finally {
      lazy.disconnect();
    }
  });
});
