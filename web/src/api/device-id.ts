/**
 * The engine's rule for a vehicle or meter id: its `DEVICE_ID_PATTERN` and the words its 400
 * answer gives (`DeviceId` in src/schema/primitives.ts, which test/browser/engine-rules.test.ts
 * holds these to). Written out here: nothing of src/ reaches the bundle.
 */
export const DEVICE_ID_PATTERN = /^(?!\.+$)[A-Za-z0-9._:-]{1,64}$/;
export const DEVICE_ID_RULE = '1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone';

export const isDeviceId = (value: string): boolean => DEVICE_ID_PATTERN.test(value);
