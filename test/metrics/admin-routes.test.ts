/**
 * The admin server's extension point: extra routes are matched on method and path, get the query and body, sit behind
 * the bearer token when they ask for it, answer 405 on a wrong method and 503 when their handler rejects.
 */
import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAdminServer } from '../../src/metrics/admin-server.ts';
import { captureLogs } from '../helpers/redis.ts';

const TOKEN = 'route-token-0123456789abcdef0123456789';
const logs = captureLogs('info');
const admin = createAdminServer(
  {
    ready: () => true,
    status: () => ({}),
    metrics: (_req, res) => res.end(''),
    routes: [
      { method: 'GET', path: '/echo', auth: false, handle: (r) => ({ status: 200, body: { q: r.query.get('q') } }) },
      { method: 'POST', path: '/guarded', auth: true, handle: (r) => ({ status: 202, body: { got: JSON.parse(r.body) } }) },
      {
        method: 'GET',
        path: '/broken',
        auth: false,
        handle: async () => {
          throw new Error('redis away');
        },
      },
    ],
  },
  TOKEN,
  logs.logger,
);
let base: string;

beforeAll(async () => {
  base = `http://127.0.0.1:${(await admin.listen(0, '127.0.0.1')).port}`;
});
afterAll(() => admin.close());

async function call(method: 'GET' | 'POST', path: string, body?: string, token?: string) {
  const res = await request(`${base}${path}`, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.statusCode, text: await res.body.text() };
}

it('passes the query to an open route', async () => {
  const r = await call('GET', '/echo?q=a%20b');
  expect(r.status).toBe(200);
  expect(JSON.parse(r.text)).toEqual({ q: 'a b' });
});

it('answers 405 for a known path with another method', async () => {
  expect((await call('POST', '/echo', '{}')).status).toBe(405);
});

it('keeps a guarded route behind the bearer token', async () => {
  expect((await call('POST', '/guarded', '{"a":1}')).status).toBe(401);
  expect((await call('POST', '/guarded', '{"a":1}', 'wrong')).status).toBe(401);
  const ok = await call('POST', '/guarded', '{"a":1}', TOKEN);
  expect(ok.status).toBe(202);
  expect(JSON.parse(ok.text)).toEqual({ got: { a: 1 } });
});

it('answers 503 with the message when a handler rejects', async () => {
  const r = await call('GET', '/broken');
  expect(r.status).toBe(503);
  expect(JSON.parse(r.text).error).toBe('redis away');
});

it('still answers 404 for unknown paths', async () => {
  expect((await call('GET', '/nowhere')).status).toBe(404);
});
