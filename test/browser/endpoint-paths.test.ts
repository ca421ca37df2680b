import { ApiClient } from '../../web/src/api/api-client';
import { fetchChargePoint, fetchVehicleStatus } from '../../web/src/api/endpoints';

/** The paths a dashboard's requests go to, as the browser would resolve them. */
async function requestedPaths(request: (api: ApiClient) => Promise<unknown>): Promise<string> {
  let url = '';
  const api = new ApiClient({
    keys: { get: () => null, set: () => undefined, clear: () => undefined },
    promptForKey: async () => null,
    fetch: async (input) => {
      url = new URL(String(input), 'http://engine.test').pathname;
      return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
    },
  });
  await request(api);
  return url;
}

describe("the dashboard's requests for an id of dots alone", () => {
  test.each(['.', '..'])(
    'when a link names %j, then the request goes to that endpoint with an id the engine refuses, not to another endpoint',
    async (dots) => {
      expect(await requestedPaths((api) => fetchVehicleStatus(api, dots))).toBe(
        '/v1/vehicles/.../status',
      );
      expect(await requestedPaths((api) => fetchChargePoint(api, dots))).toBe(
        '/v1/charge-points/...',
      );
    },
  );
  test('when an id holds dots among other characters, then it is sent as it is', async () => {
    expect(await requestedPaths((api) => fetchVehicleStatus(api, 'a.b..c'))).toBe(
      '/v1/vehicles/a.b..c/status',
    );
  });
});
