/**
 * The HTTP ceiling: a bare Node `http` server that reads and parses the same JSON body and
 * answers 202, with nothing else. `node dist/bench/bare-server.js <port>`.
 */
import http from 'node:http';

const port = Number(process.argv[2] ?? 3999);
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { meterId?: string };
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ accepted: 1, type: 'meter', id: body.meterId }));
    } catch {
      res.writeHead(400).end();
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
