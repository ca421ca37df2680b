import pino from 'pino';
import { ChargePointRecorder, RECORD_RETRY_MS } from '../../src/ocpp/charge-point-recorder';
import type { BootRecord, ChargePointStore } from '../../src/ocpp/charge-point-store';

/**
 * The recorder's sequencing, against a store whose writes the test settles one by one (the
 * PostgreSQL side is tested in test/ocpp.test.ts, through an outage).
 */
function heldStore() {
  const writes: { what: string; settle: (ok: boolean) => void }[] = [];
  const write = (what: string) =>
    new Promise<void>((resolve, reject) => {
      writes.push({
        what,
        settle: (ok) => (ok ? resolve() : reject(new Error('PostgreSQL is away'))),
      });
    });
  const store = {
    recordConnected: (id: string) => write(`connected ${id}`),
    recordBoot: (r: BootRecord) => write(`boot ${r.id} ${r.vendor}`),
  } as unknown as ChargePointStore;
  return { store, writes };
}

const boot = (vendor: string): BootRecord => ({
  id: 'CP-1',
  vendor,
  model: 'M',
  serialNumber: null,
  firmwareVersion: null,
  lastBootAt: new Date(0),
});

const settled = () => new Promise((r) => setImmediate(r));

const recorderOf = (store: ChargePointStore, now?: () => number) =>
  new ChargePointRecorder({ store, logger: pino({ level: 'silent' }), now });

test('a write PostgreSQL refused is tried again on a later call, once it is due, and then no more', async () => {
  const { store, writes } = heldStore();
  let now = 0;
  const recorder = recorderOf(store, () => now);
  const booted = recorder.booted(boot('A'));
  writes[0].settle(false);
  await booted; // answered all the same
  expect(recorder.pending).toBe(1);
  recorder.heardFrom('CP-1'); // not due yet
  expect(writes).toHaveLength(1);
  now += RECORD_RETRY_MS;
  recorder.heardFrom('CP-1');
  expect(writes.map((w) => w.what)).toEqual(['boot CP-1 A', 'boot CP-1 A']);
  writes[1].settle(true);
  await settled();
  expect(recorder.pending).toBe(0);
  now += RECORD_RETRY_MS;
  recorder.heardFrom('CP-1');
  expect(writes).toHaveLength(2);
});

test('a boot arriving while an older one (or the connection) is written is written after it, and answered only then; a reconnection keeps an unwritten boot', async () => {
  const { store, writes } = heldStore();
  let now = 0;
  const recorder = recorderOf(store, () => now);
  recorder.connected('CP-1');
  void recorder.booted(boot('A'));
  let bootedB = false;
  void recorder.booted(boot('B')).then(() => (bootedB = true));
  expect(writes.map((w) => w.what)).toEqual(['connected CP-1']);
  writes[0].settle(true);
  await settled();
  // Only the newest boot is written after the connection.
  expect(writes.map((w) => w.what)).toEqual(['connected CP-1', 'boot CP-1 B']);
  expect(bootedB).toBe(false);
  writes[1].settle(false);
  await settled();
  expect(bootedB).toBe(true); // kept to be written later: answered all the same
  // It reconnects without booting again: the boot not written is what is written, once the
  // backoff after the refusal has passed (within it, kept for a later call, as every record is).
  recorder.connected('CP-1');
  expect(writes).toHaveLength(2);
  now += RECORD_RETRY_MS;
  recorder.connected('CP-1');
  expect(writes[2].what).toBe('boot CP-1 B');
  writes[2].settle(true);
  await settled();
  expect(recorder.pending).toBe(0);
});

test('after a refusal, no charge point retries until the interval has passed (one backoff for all)', async () => {
  const { store, writes } = heldStore();
  let now = 0;
  const recorder = recorderOf(store, () => now);
  recorder.connected('CP-1');
  recorder.connected('CP-2');
  writes.forEach((w) => w.settle(false));
  await settled();
  now += RECORD_RETRY_MS - 1;
  recorder.heardFrom('CP-1');
  recorder.heardFrom('CP-2');
  expect(writes).toHaveLength(2);
  now += 1;
  recorder.heardFrom('CP-1');
  writes[2].settle(false);
  await settled();
  recorder.heardFrom('CP-2'); // CP-1's refusal starts the interval again
  expect(writes).toHaveLength(3);
});
