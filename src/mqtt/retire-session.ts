import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger';
import type { MqttService } from './mqtt-service';

const POLL_MS = 100;
const PROGRESS_LOG_MS = 5000;

/** The broker held no session for the client id: nothing was queued for it (a mistyped id?). */
export class NoSessionError extends Error {
  constructor(clientId: string) {
    super(
      `the broker holds no session of client id ${clientId}: nothing to collect. Is it the MQTT_CLIENT_ID the stopped process used (its log's "MQTT connected" line names it)?`,
    );
    this.name = 'NoSessionError';
  }
}

/**
 * Retires an MQTT client id (a process scaled down for good): collects what the broker still
 * queues in its session and ends the session. Mosquitto 2.0.11 keeps a stopped member's share of a
 * shared subscription in its session and hands it to no other member (README, MQTT), so those
 * messages are stored only when that id connects again. `service` runs under that id, collecting
 * only (createMqttService's collectOnly: it never subscribes, so no new messages come), and stores
 * what the broker sends until none came
 * for `quietMs` and none waits for storage, then disconnects ending the session. Never while a
 * message is unacknowledged: that one would be lost with the session. Resolves with how many
 * messages it stored (or refused to the rejects list); rejects with NoSessionError when the broker
 * held no session for the id.
 */
export async function retireSession(
  service: MqttService,
  {
    quietMs,
    connectTimeoutMs,
    logger,
  }: { quietMs: number; connectTimeoutMs: number; logger: Logger },
): Promise<number> {
  const { intake } = service;
  await until(
    () =>
      intake.ready().then(
        () => true,
        () => false,
      ),
    connectTimeoutMs,
  ).catch(() => {
    throw new Error(`not connected and subscribed within ${connectTimeoutMs} ms`);
  });
  if (intake.sessionFound === false) {
    // Connecting made one, with no subscription: ended again, so the mistaken id leaves nothing.
    await service.close({ endSession: true });
    throw new NoSessionError(intake.clientId);
  }
  let seen = intake.delivered;
  let quietSince = Date.now();
  let loggedAt = Date.now();
  while (Date.now() - quietSince < quietMs) {
    await sleep(POLL_MS);
    if (intake.delivered !== seen || intake.unacked > 0) {
      seen = intake.delivered;
      quietSince = Date.now();
    }
    if (Date.now() - loggedAt >= PROGRESS_LOG_MS) {
      loggedAt = Date.now();
      logger.info({ delivered: seen, unacked: intake.unacked }, 'collecting the session');
    }
  }
  await service.close({ endSession: true });
  return seen;
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(POLL_MS);
  }
}
