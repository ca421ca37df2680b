/**
 * Preloaded into the benchmark's OCPP API process (`node --expose-gc --require
 * dist/bench/memory-probe.js dist/src/server.js`); the engine itself knows nothing of it. On the
 * IPC message `{type:'memory'}` it collects garbage, then answers with process.memoryUsage(), so
 * memory per connection compares live objects rather than whatever garbage happens to be around.
 */
process.on('message', (message: { type?: string }) => {
  if (message?.type !== 'memory') return;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  // A second pass after the first one's finalizers ran frees what they released.
  setImmediate(() => {
    gc?.();
    process.send?.({ type: 'memory', collected: gc !== undefined, ...process.memoryUsage() });
  });
});
// The IPC channel must not keep the API alive once it has shut down.
process.channel?.unref();
