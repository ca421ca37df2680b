/**
 * `npm run mqtt:retire -- --client-id ID`: retires an engine process's MQTT client id for good
 * (see src/mqtt/retire-session.ts): stores what the broker still queues for it, then ends its
 * session. Run it once the process that used the id is stopped, with that process's settings.
 */
import {
  loadConfig,
  MQTT_CLIENT_ID_RULE,
  redactUrl,
  warnOfMisspelledSettings,
} from '../src/config';
import { exitOnStartupFailure } from '../src/lifecycle';
import { createLogger, startingLogLevel } from '../src/logger';
import { createMqttService } from '../src/mqtt/mqtt-service';
import { NoSessionError, retireSession } from '../src/mqtt/retire-session';
import { openIngestQueues } from '../src/queue/ingest-queue';
import { assertDependenciesReachable } from '../src/startup-checks';
import { commandLineOrExit, parseCommandLine, UsageError } from './cli';

const command = {
  usage: 'npm run mqtt:retire -- --client-id ID [--quiet-s 5]',
  summary:
    "Connects as a retired engine process's MQTT client id, stores what the broker still queues in its session, then ends the session (MQTT_URL, REDIS_URL and REDIS_PREFIX as that process had them). Stop that process first.",
  options: {
    'client-id': { type: 'string', value: 'ID', help: 'the MQTT_CLIENT_ID the process used' },
    'quiet-s': {
      type: 'string',
      value: 'S',
      default: '5',
      help: 'end the session once no message came for this long',
    },
  },
} as const;

const CONNECT_TIMEOUT_MS = 15_000;

function parse(argv: string[]): { clientId: string; quietMs: number } {
  const { values } = parseCommandLine(argv, command);
  const clientId = values['client-id'];
  if (!clientId) throw new UsageError('--client-id is required: the MQTT_CLIENT_ID to retire');
  if (!new RegExp(MQTT_CLIENT_ID_RULE.pattern).test(clientId)) {
    throw new UsageError(
      `--client-id must be ${MQTT_CLIENT_ID_RULE.expected}, as MQTT_CLIENT_ID is`,
    );
  }
  const quietS = Number(values['quiet-s']);
  if (!/^\d+(\.\d+)?$/.test(values['quiet-s']) || quietS < 1 || quietS > 600) {
    throw new UsageError('--quiet-s must be a number of seconds from 1 to 600');
  }
  return { clientId, quietMs: quietS * 1000 };
}

async function main(): Promise<void> {
  const logger = createLogger({ level: startingLogLevel(process.env), name: 'mqtt-retire' });
  const { clientId, quietMs } = commandLineOrExit(() => parse(process.argv.slice(2)));
  try {
    warnOfMisspelledSettings(process.env, logger);
    const env = loadConfig(process.env);
    const { mqttUrl } = env;
    if (!mqttUrl) throw new UsageError('MQTT_URL is not set: the broker that holds the session');
    const config = { ...env, mqttUrl, mqttClientId: clientId };
    await assertDependenciesReachable(config, { postgres: false, mqtt: true });
    const { redis, queues } = await openIngestQueues(config);
    const service = createMqttService({ config, redis, queues, logger, collectOnly: true });
    // Stopped before the end, the session stays as it was: run the command again.
    const interrupt = () => void service.close().finally(() => process.exit(130));
    process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
    const stored = await retireSession(service, {
      quietMs,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      logger,
    });
    await queues.close();
    await redis.quit();
    logger.info({ clientId, broker: redactUrl(mqttUrl), messages: stored }, 'session retired');
    console.log(`retired ${clientId}: ${stored} message(s) collected, session ended`);
  } catch (err) {
    if (err instanceof NoSessionError) {
      logger.error({ clientId }, 'no session to retire');
      process.stderr.write(`\nNot retired: ${err.message}\n\n`);
      process.exit(1);
    }
    exitOnStartupFailure(err, logger);
  }
}

void main();
