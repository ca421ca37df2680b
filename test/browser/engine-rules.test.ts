/**
 * Figures and rules the dashboard writes out for itself (nothing of src/ reaches its bundle),
 * held to the engine's own declarations.
 */
import {
  ENGINE_STATEMENT_TIMEOUT_MS,
  keyTextProblem,
  MAX_KEY_LENGTH,
  REQUEST_TIMEOUT_MS,
} from '../../web/src/api/api-client';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE, isDeviceId } from '../../web/src/api/device-id';
import { MAX_CUSTOM_WINDOW_HOURS } from '../../web/src/routing/analytics-window';
import { MAX_WINDOW_HOURS } from '../../src/reports/window-params';
import { settingsSchema } from '../../src/config';
import { DeviceId } from '../../src/schema/primitives';
import { generateKey } from '../../src/auth/api-keys';
import { maxHeaderSize } from 'node:http';

describe("the dashboard's copies of the engine's rules", () => {
  test("when the page waits for an answer, then it waits longer than the engine's statement timeout (its default)", () => {
    expect(ENGINE_STATEMENT_TIMEOUT_MS).toBe(
      settingsSchema.properties.DB_STATEMENT_TIMEOUT_MS.default,
    );
    expect(REQUEST_TIMEOUT_MS).toBeGreaterThan(ENGINE_STATEMENT_TIMEOUT_MS);
  });

  test("when the page checks a custom window's length, then it allows what the engine's reports allow", () => {
    expect(MAX_CUSTOM_WINDOW_HOURS).toBe(MAX_WINDOW_HOURS);
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

  test('when the page checks a pasted key, then it takes every key the engine makes and refuses only what no engine reads', () => {
    const made = [generateKey('reader', ['read']).key, generateKey('CP-1', ['charge-point']).key];
    expect(made.map(keyTextProblem)).toEqual([null, null]);
    expect(keyTextProblem('k'.repeat(MAX_KEY_LENGTH))).toBeNull();
    expect(MAX_KEY_LENGTH).toBeLessThan(maxHeaderSize);
    expect(keyTextProblem(`${made[0]},${made[0]}`)).toMatch(/comma/);
  });
});
