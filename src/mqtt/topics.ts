/**
 * The MQTT topics the engine consumes, derived from the device kinds: `{prefix}/readings` carries
 * readings of any kind (each names its device), `{prefix}/{kind.plural}/{id}` readings of one device,
 * which may leave the id out (the topic gives it) and, when they carry it, must carry the same.
 */
import { DEVICE_KINDS, type DeviceKind } from '../devices/device-kinds';
import { DEVICE_ID_PATTERN, DeviceId } from '../schema/primitives';
import { isPlainObject } from '../schema/validator';
import type { IngestItem } from '../telemetry/ingest-service';

export type TopicRoute = { kind: 'readings' } | { kind: 'device'; device: DeviceKind; id: string };

/** Low-cardinality label of a topic for metrics: `readings`, a device type, or `unknown`. */
export type TopicKind = 'readings' | DeviceKind['type'] | 'unknown';

export interface MqttTopics {
  /** What the engine subscribes to: every topic under the prefix (shared by the group, if one). */
  readonly subscription: string;
  /**
   * The other form, plain or shared, which a kept session may still hold from an earlier
   * MQTT_SHARED_SUBSCRIPTION: with both, every message came twice. Null without a group.
   */
  readonly formerSubscription: string | null;
  readonly readings: string;
  /** The topic forms, for messages: `energy/v1/readings`, `energy/v1/meters/{meterId}`, ... */
  readonly forms: readonly string[];
  device(kind: DeviceKind, id: string): string;
  /** The route of a topic, or null when it is not one of the engine's. */
  parse(topic: string): TopicRoute | null;
}

export const topicKind = (route: TopicRoute | null): TopicKind =>
  route === null ? 'unknown' : route.kind === 'readings' ? 'readings' : route.device.type;

/**
 * `group` names the shared subscription (`$share/{group}/...`): every engine process of one
 * deployment (one REDIS_PREFIX) is in the same group, so the broker hands each message to one.
 * Not `shared`: a plain subscription, for a deployment with one consuming process.
 */
export function createMqttTopics(
  prefix: string,
  { group, shared }: { group: string | null; shared: boolean },
): MqttTopics {
  const plain = `${prefix}/#`;
  const sharedForm = group === null ? null : `$share/${group}/${plain}`;
  const byPlural = new Map<string, DeviceKind>(DEVICE_KINDS.map((k) => [k.plural, k]));
  const readings = `${prefix}/readings`;
  const levels = prefix.split('/').length;
  return {
    subscription: shared && sharedForm ? sharedForm : plain,
    formerSubscription: sharedForm && (shared ? plain : sharedForm),
    readings,
    forms: [readings, ...DEVICE_KINDS.map((k) => `${prefix}/${k.plural}/{${k.idField}}`)],
    device: (kind, id) => `${prefix}/${kind.plural}/${id}`,
    parse(topic) {
      if (topic === readings) return { kind: 'readings' };
      if (!topic.startsWith(`${prefix}/`)) return null;
      const rest = topic.split('/').slice(levels);
      const device = rest.length === 2 ? byPlural.get(rest[0]) : undefined;
      if (!device || rest[1] === '') return null;
      return { kind: 'device', device, id: rest[1] };
    },
  };
}

const VALID_DEVICE_ID = new RegExp(DEVICE_ID_PATTERN);

const refusal = (error: string, message: string, path: string, detail: string): IngestItem => ({
  invalid: { error, message, details: [{ path, message: detail }] },
});

/**
 * Binds the items of a device topic to its device: an item without the id gets the topic's, one
 * with another id or another kind's id field is refused (`topic_mismatch`), and every item of a
 * topic whose id is not a valid device id (`invalid_topic_id`). Anything that is not an object is
 * left for validation to describe.
 */
export function bindToTopic(items: IngestItem[], route: TopicRoute): IngestItem[] {
  if (route.kind !== 'device') return items;
  const { device, id } = route;
  if (!VALID_DEVICE_ID.test(id)) {
    // Said of the topic: the publisher may never have sent the id field validation would name.
    const refused = refusal(
      'invalid_topic_id',
      `The topic's ${device.idField} ${JSON.stringify(id)} must be ${DeviceId.description}`,
      '/',
      `the topic's device id must be ${DeviceId.description}`,
    );
    return items.map(() => refused);
  }
  return items.map((item) => {
    if (!('value' in item) || !isPlainObject(item.value)) return item;
    const value = item.value;
    const other = DEVICE_KINDS.find((k) => k !== device && Object.hasOwn(value, k.idField));
    if (other) {
      return refusal(
        'topic_mismatch',
        `A ${other.type} reading (${other.idField}) was sent to the ${device.type} topic of ${JSON.stringify(id)}`,
        `/${other.idField}`,
        `not allowed on a ${device.plural} topic`,
      );
    }
    if (!Object.hasOwn(value, device.idField)) {
      // Added to the parsed message itself, which nothing else holds: a copy cost time in the
      // object's size before validation refused too many fields (1.2 s for 200,000 of them, while
      // no other message was stored).
      value[device.idField] = id;
      return item;
    }
    // Not a string (123 for "123"): validation says what an id must be.
    if (typeof value[device.idField] !== 'string') return item;
    if (value[device.idField] !== id) {
      return refusal(
        'topic_mismatch',
        `${device.idField} ${JSON.stringify(value[device.idField])} differs from the topic's ${JSON.stringify(id)}`,
        `/${device.idField}`,
        `must equal the topic's device id ${JSON.stringify(id)}`,
      );
    }
    return item;
  });
}
