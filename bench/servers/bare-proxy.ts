/**
 * The peer without telemetry: the smallest keep-alive reverse proxy on undici (the same Pool and streaming canary-gate
 * uses), no recording, no metrics, no header rewriting beyond hop-by-hop. argv[2]: the upstream URL. Prints {"port": N}.
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const pool = new Pool(process.argv[2]!, { connections: 128, pipelining: 1 });
const server = createServer((req, res) => {
  const headers = { ...req.headers };
  delete headers.connection;
  delete headers['keep-alive'];
  delete headers['transfer-encoding'];
  pool
    .request({
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as 'GET',
      headers,
      body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
    })
    .then(
      async (r) => {
        res.writeHead(r.statusCode, r.headers as Record<string, string>);
        for await (const chunk of r.body) res.write(chunk);
        res.end();
      },
      () => {
        res.writeHead(502).end();
      },
    );
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => void pool.close().then(() => process.exit(0))));
