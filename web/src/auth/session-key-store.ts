import type { KeyStore } from '../api/api-client';

const STORAGE_KEY = 'energy-dashboard:api-key';

/**
 * The API key for this tab only: sessionStorage is gone when the tab closes. `onChange` hears
 * whether a key is kept after each change (the header's "Forget API key" shows only then).
 */
export function createSessionKeyStore(
  storage: Storage = sessionStorage,
  onChange: (kept: boolean) => void = () => undefined,
): KeyStore {
  return {
    get: () => storage.getItem(STORAGE_KEY),
    set: (key) => {
      storage.setItem(STORAGE_KEY, key);
      onChange(true);
    },
    clear: () => {
      storage.removeItem(STORAGE_KEY);
      onChange(false);
    },
  };
}
