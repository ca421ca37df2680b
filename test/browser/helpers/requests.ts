import { waitForDrained, type TestEngine } from '../../helpers/engine';

/** A JSON POST to the engine that must succeed. */
export async function post(engine: TestEngine, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${engine.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`${path} answered ${res.status}: ${await res.text()}`);
}

/** Readings every one of which the engine accepts (202, not 207), once they are stored. */
export async function ingestAllStored(engine: TestEngine, readings: unknown[]): Promise<void> {
  const res = await fetch(`${engine.url}/v1/telemetry/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(readings),
  });
  expect(res.status).toBe(202);
  await waitForDrained(engine.queue);
}
