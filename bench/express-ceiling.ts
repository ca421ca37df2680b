/**
 * The Express ceiling: the API's own Express set-up (createExpress, createHttpServer) with
 * `express.json()` at the engine's BODY_LIMIT, answering at once: POST the ingest path's 202, any
 * GET a small JSON (the analytics latency ceiling). No validation, no Redis.
 * `node dist/bench/express-ceiling.js PORT`.
 */
import express from 'express';

import { createExpress, createHttpServer } from '../src/http/http-server';
import { loadConfig } from '../src/config';
import { commandLineOrExit, numberOption, parseCommandLine, UsageError } from '../scripts/cli';

const port = commandLineOrExit(() => {
  const { positionals } = parseCommandLine(process.argv.slice(2), {
    usage: 'node dist/bench/express-ceiling.js PORT',
    options: {},
    positionals: true,
  });
  if (positionals.length !== 1) throw new UsageError('expected one argument, the port');
  return numberOption('PORT', positionals[0], { max: 65535, integer: true });
});
const config = loadConfig(process.env);
const app = createExpress();
app.use(express.json({ limit: config.bodyLimitBytes }));
app.post('/v1/telemetry/ingest', (req, res) => {
  const body = req.body as { meterId?: string } | unknown[];
  if (Array.isArray(body)) res.status(202).json({ accepted: body.length, rejected: 0 });
  else res.status(202).json({ accepted: 1, type: 'meter', id: body.meterId });
});
app.get('/{*path}', (_req, res) => {
  res.json({ vehicleId: 'AV-1', hours: 24, kwh: 21.6, efficiency: 0.9 });
});
const server = createHttpServer(app).listen(port, '127.0.0.1', () => process.send?.('ready'));
server.keepAliveTimeout = 65_000;
process.on('SIGTERM', () => server.close(() => process.exit(0)));
