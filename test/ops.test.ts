import request from 'supertest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { freePort } from '../bench/bench-helpers';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config';
import { createMqttMetrics } from '../src/metrics';
import { createHttpServer } from '../src/http/http-server';
import {
  startTestApi,
  startTestFlusher,
  waitFor,
  type TestApi,
  type TestFlusher,
} from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';

const ROOT = path.join(__dirname, '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** A Debian binary that CI installs (.ci/run); on a developer machine without it the check is skipped. */
function tool(name: string): string | null {
  const found = [`/usr/bin/${name}`, `/usr/local/bin/${name}`].find((p) => existsSync(p));
  if (!found && process.env.CI)
    throw new Error(`${name} is missing: install Debian package prometheus`);
  return found ?? null;
}

let ctx: TestContext;
let api: TestApi;
let flusher: TestFlusher;

beforeAll(async () => {
  ctx = await createTestContext();
  api = await startTestApi(ctx);
  flusher = await startTestFlusher(ctx);
});
afterAll(async () => {
  await flusher.close();
  await api.close();
  await ctx.cleanup();
});

/** Metric family names a process exports (histograms also as _bucket, _sum, _count). */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(match[1]);
    if (match[2] === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) names.add(match[1] + s);
  }
  return names;
}

describe('docker-compose stack', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<
      string,
      {
        build?: string;
        image?: string;
        command?: string[];
        volumes?: string[];
        environment?: Record<string, string>;
        profiles?: string[];
        healthcheck?: { test: string[] };
      }
    >;
  };
  /** The services of a profile; '' for those that always run. */
  const servicesOf = (profile: string) =>
    Object.keys(compose.services)
      .filter((name) => (compose.services[name].profiles ?? ['']).includes(profile))
      .sort();

  test('when the compose file is read, then it runs the stores, the MQTT broker, a migrate job, the API, the flusher, Prometheus and Grafana', () => {
    expect(servicesOf('')).toEqual([
      'api',
      'flusher',
      'grafana',
      'migrate',
      'mosquitto',
      'postgres',
      'prometheus',
      'redis',
    ]);
    const redis = compose.services.redis.command?.join(' ') ?? '';
    expect(redis).toMatch(/--appendonly yes/);
    expect(redis).toMatch(/--maxmemory-policy noeviction/);
    for (const name of ['api', 'flusher', 'migrate'])
      expect(compose.services[name].build).toBe('.');
    expect(existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
  });

  test('when the compose stack runs MQTT, then the API consumes it with a fixed client id and the broker drops nothing', () => {
    const api = compose.services.api.environment ?? {};
    expect(api.MQTT_URL).toBe('mqtt://mosquitto:1883');
    expect(api.MQTT_CLIENT_ID).toBeTruthy();
    const conf = read('ops/mosquitto/mosquitto.conf');
    for (const line of ['persistence true', 'max_queued_messages 0', 'max_queued_bytes 0'])
      expect(conf.split('\n')).toContain(line);
    expect(compose.services.mosquitto.volumes).toContain(
      './ops/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro',
    );
  });

  test('when the compose file names a host path or a command, then it exists', () => {
    for (const service of Object.values(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const host = volume.split(':')[0];
        if (host.startsWith('./')) expect(existsSync(path.join(ROOT, host))).toBe(true);
      }
      const entry = service.command?.find((part) => part.startsWith('dist/'));
      if (entry)
        expect(
          existsSync(path.join(ROOT, entry.replace(/^dist\//, '').replace(/\.js$/, '.ts'))),
        ).toBe(true);
    }
  });

  test("when Docker checks the engine's services, then each probes its own /health/ready, and the probe runs", async () => {
    const probes = {
      api: 'PORT',
      flusher: 'FLUSHER_PORT',
      'api-cluster': 'PORT',
      'flusher-cluster': 'FLUSHER_PORT',
    };
    for (const [name, portVariable] of Object.entries(probes)) {
      const { healthcheck, environment = {} } = compose.services[name];
      const [cmd, node, flag, script] = healthcheck?.test ?? [];
      expect([cmd, node, flag]).toEqual(['CMD', 'node', '-e']);
      expect(script).toContain(`http://127.0.0.1:${environment[portVariable]}/health/ready`);
    }
    // The probe itself, against a server that is ready and then one that is not.
    const script = compose.services.api.healthcheck?.test[3] ?? '';
    for (const status of [200, 503]) {
      const server = http.createServer((req, res) => {
        res.statusCode = req.url === '/health/ready' ? status : 404;
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const probe = spawn(process.execPath, ['-e', script.replace(':3000/', `:${port}/`)]);
      const [exitCode] = (await once(probe, 'exit')) as [number];
      server.close();
      expect(exitCode).toBe(status === 200 ? 0 : 1);
    }
  });

  test('when the engine services are configured, then their environment passes the start-up validation', () => {
    for (const name of ['api', 'flusher', 'migrate']) {
      const environment = compose.services[name].environment;
      expect(environment?.DATABASE_URL).toMatch(/^postgres:\/\/postgres@postgres:5432\//);
      expect(() => loadConfig(environment)).not.toThrow();
    }
  });

  test('when the cluster profile is read, then six persistent cluster nodes, a create job and the engine on them with 3 shards and WAIT 1 are defined', () => {
    const nodes = servicesOf('cluster').filter((name) => name.startsWith('redis-node-'));
    expect(nodes).toHaveLength(6);
    for (const name of nodes) {
      const command = compose.services[name].command?.join(' ') ?? '';
      expect(command).toMatch(/--cluster-enabled yes/);
      expect(command).toMatch(/--appendonly yes/);
      expect(command).toMatch(/--maxmemory-policy noeviction/);
      expect(compose.services[name].volumes).toEqual([`${name}:/data`]);
    }
    const create = compose.services['redis-cluster-create'].command?.join(' ') ?? '';
    expect(create).toMatch(/--cluster create .* --cluster-replicas 1 --cluster-yes/);
    for (const name of ['api-cluster', 'flusher-cluster']) {
      const environment = compose.services[name].environment ?? {};
      expect(environment.REDIS_CLUSTER_NODES?.split(',')).toEqual(nodes.map((n) => `${n}:6379`));
      expect(loadConfig(environment)).toMatchObject({ queueShards: 3, redisWaitReplicas: 1 });
    }
  });

  test('when the Prometheus config and alert rules are checked by promtool, then they are valid', () => {
    const promtool = tool('promtool');
    if (!promtool) return;
    const out = execFileSync(promtool, [
      'check',
      'config',
      path.join(ROOT, 'ops/prometheus/prometheus.yml'),
    ]).toString();
    expect(out).toMatch(/SUCCESS/);
  });

  test('when the dashboard and the alerts query metrics, then every metric is one the processes export', async () => {
    const mqttRegistry = new Registry();
    createMqttMetrics(mqttRegistry, { unacked: () => 0 });
    const exported = new Set([
      ...exportedNames((await request(api.api.app).get('/metrics')).text),
      ...exportedNames((await request(flusher.flusher.healthApp).get('/metrics')).text),
      // A process consuming MQTT exports these too (the API here does not consume MQTT).
      ...exportedNames(await mqttRegistry.metrics()),
      'up',
    ]);
    const dashboard = JSON.parse(read('ops/grafana/dashboards/energy-engine.json')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const exprs = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
      ...read('ops/prometheus/alerts.yml')
        .split('\n')
        .filter((l) => /expr:/.test(l)),
    ];
    const used = new Set(exprs.flatMap((e) => e.match(/\b(energy_[a-z_]+|up)\b/g) ?? []));
    expect(used.size).toBeGreaterThan(8);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });
});

describe('a real Prometheus', () => {
  const servers: Server[] = [];
  let prometheus: ChildProcess | null = null;

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  const listen = (app: Express) =>
    new Promise<number>((resolve) => {
      const server = createHttpServer(app).listen(0, '127.0.0.1', () =>
        resolve((server.address() as AddressInfo).port),
      );
      servers.push(server);
    });

  test('when Prometheus scrapes both processes, then both targets are up and the ingest counters moved', async () => {
    const binary = tool('prometheus');
    if (!binary) return;
    const apiPort = await listen(api.api.app);
    const flusherPort = await listen(flusher.flusher.healthApp);
    const promPort = await freePort();

    const dir = mkdtempSync(path.join(os.tmpdir(), 'prom-'));
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: energy-api\n    static_configs: [{ targets: ['127.0.0.1:${apiPort}'] }]\n  - job_name: energy-flusher\n    static_configs: [{ targets: ['127.0.0.1:${flusherPort}'] }]\n`,
    );
    prometheus = spawn(
      binary,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    const query = async (q: string) => {
      const res = await fetch(
        `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
      );
      const body = (await res.json()) as {
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      return body.data.result;
    };

    await waitFor(
      async () => {
        try {
          const up = await query('up');
          return up.length === 2 && up.every((r) => r.value[1] === '1');
        } catch {
          return false;
        }
      },
      30_000,
      'both targets up',
    );

    await request(api.api.app)
      .post('/v1/telemetry/ingest')
      .set('Content-Type', 'application/json')
      .send([{ meterId: 'M-p', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-03-20T10:00:00Z' }])
      .expect(202);
    await waitFor(
      async () => {
        const accepted = await query(
          'sum(energy_ingest_readings_accepted_total{job="energy-api"})',
        );
        const written = await query(
          'sum(energy_flush_readings_written_total{job="energy-flusher"})',
        );
        return Number(accepted[0]?.value[1] ?? 0) >= 1 && Number(written[0]?.value[1] ?? 0) >= 1;
      },
      30_000,
      'the counters to move in Prometheus',
    );
  });
});
