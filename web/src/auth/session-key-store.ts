import type { KeyStore } from '../api/api-client';

const STORAGE_KEY = 'energy-dashboard:api-key';

/** The API key for this tab only: sessionStorage is gone when the tab closes. */
export function createSessionKeyStore(storage: Storage = sessionStorage): KeyStore {
  return {
    get: () => storage.getItem(STORAGE_KEY),
    set: (key) => storage.setItem(STORAGE_KEY, key),
    clear: () => storage.removeItem(STORAGE_KEY),
  };
}
