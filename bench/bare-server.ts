/**
 * The bare HTTP ceiling: a Node `http` server that reads and parses the same JSON bodies (one
 * reading or a batch) and answers 202, with nothing else; a GET gets a small JSON at once (the
 * stall floor). `node dist/bench/bare-server.js [PORT]`.
 */
import http from 'node:http';
import { commandLineOrExit, numberOption, parseCommandLine, UsageError } from '../scripts/cli';

const DEFAULT_PORT = '3999';

const port = commandLineOrExit(() => {
  const { positionals } = parseCommandLine(process.argv.slice(2), {
    usage: `node dist/bench/bare-server.js [PORT]  (PORT: default ${DEFAULT_PORT})`,
    options: {},
    positionals: true,
  });
  if (positionals.length > 1) throw new UsageError('expected at most one argument, the port');
  return numberOption('PORT', positionals[0] ?? DEFAULT_PORT, { max: 65535, integer: true });
});
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as
        { meterId?: string } | unknown[];
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          Array.isArray(body)
            ? { accepted: body.length, rejected: 0 }
            : { accepted: 1, type: 'meter', id: body.meterId },
        ),
      );
    } catch {
      res.writeHead(400).end();
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
