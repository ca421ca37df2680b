/**
 * Remembers the scroll position per URL hash for this tab, so a reload (or coming back to a
 * screen) puts the reader where they were once the data is on screen again.
 */
export function createScrollMemory(storage: Storage = sessionStorage): {
  restore(hash: string): void;
} {
  const key = (hash: string) => `energy-dashboard:scroll:${hash}`;
  let pending = false;
  window.addEventListener(
    'scroll',
    () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        storage.setItem(key(location.hash), String(Math.round(window.scrollY)));
      });
    },
    { passive: true },
  );
  return {
    restore(hash) {
      const y = Number(storage.getItem(key(hash)) ?? 0);
      window.scrollTo(0, Number.isFinite(y) ? y : 0);
    },
  };
}
