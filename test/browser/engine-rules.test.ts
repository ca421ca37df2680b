/**
 * Figures and rules the dashboard writes out for itself (nothing of src/ reaches its bundle),
 * held to the engine's own declarations.
 */
import { ENGINE_STATEMENT_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../../web/src/api/api-client';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE, isDeviceId } from '../../web/src/api/device-id';
import { settingsSchema } from '../../src/config';
import { DeviceId } from '../../src/schema/primitives';

describe("the dashboard's copies of the engine's rules", () => {
  test("when the page waits for an answer, then it waits longer than the engine's statement timeout (its default)", () => {
    expect(ENGINE_STATEMENT_TIMEOUT_MS).toBe(
      settingsSchema.properties.DB_STATEMENT_TIMEOUT_MS.default,
    );
    expect(REQUEST_TIMEOUT_MS).toBeGreaterThan(ENGINE_STATEMENT_TIMEOUT_MS);
  });

  test("when the page checks a vehicle id, then it applies the engine's pattern and says its words", () => {
    expect(DEVICE_ID_PATTERN.source).toBe(DeviceId.pattern);
    expect(DEVICE_ID_RULE).toBe(DeviceId.description);
    expect(['V-1', 'a.b', 'x'.repeat(64), 'SIM-CP-1:2'].map(isDeviceId)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['', '.', '..', 'x'.repeat(65), '50%', '<img src=x>', 'a b'].map(isDeviceId)).toEqual(
      Array(7).fill(false),
    );
  });
});
