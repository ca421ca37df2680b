import { counterTotal } from '../../bench/bench-helpers';

const SCRAPE = `# HELP energy_analytics_cache_total Report cache lookups
# TYPE energy_analytics_cache_total counter
energy_analytics_cache_total{result="miss",process="api"} 50
energy_analytics_cache_total{result="hit",process="api"} 7450
energy_analytics_cache_total_other{result="miss",process="api"} 9
energy_ingest_readings_accepted_total{type="meter",process="api"} 3
energy_ingest_readings_accepted_total{type="vehicle",process="api"} 4.5
`;

describe('counterTotal (the bench reading /metrics)', () => {
  test('when labels are given, then only the series that carry them are summed', () => {
    expect(counterTotal(SCRAPE, 'energy_analytics_cache_total', 'result="miss"')).toBe(50);
    expect(counterTotal(SCRAPE, 'energy_analytics_cache_total', 'result="hit"')).toBe(7450);
  });

  test('when no labels are given, then every series of that name is summed, and only of that name', () => {
    expect(counterTotal(SCRAPE, 'energy_ingest_readings_accepted_total')).toBe(7.5);
    expect(counterTotal(SCRAPE, 'energy_analytics_cache_total')).toBe(7500);
  });

  test('when the counter has no series yet, then the total is 0', () => {
    expect(counterTotal(SCRAPE, 'energy_mqtt_messages_received_total')).toBe(0);
    expect(counterTotal('', 'energy_analytics_cache_total', 'result="miss"')).toBe(0);
  });
});
