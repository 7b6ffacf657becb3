/** Real HTTP upstreams on loopback for tests, closed by the caller. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

export interface Upstream {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  /** Swaps the handler (e.g. to start failing). */
  handle(handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  close(): Promise<void>;
}

export const ok200 = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok');
};

export async function startUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void = ok200): Promise<Upstream> {
  let current = handler;
  const server = createServer((req, res) => current(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    handle: (h) => {
      current = h;
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Sends `GET /x` on a raw socket to a proxy on 127.0.0.1:`port`, and closes the socket at the first response byte. */
export async function leaveMidResponse(port: number): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  socket.write('GET /x HTTP/1.1\r\nhost: a\r\n\r\n');
  await new Promise((resolve) => socket.once('data', resolve));
  socket.destroy();
}

/** A port that was listening a moment ago and is not any more: connecting to 127.0.0.1 on it is refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
