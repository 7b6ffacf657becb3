/**
 * A WebSocket echo app for the tunnel tests (RFC 6455, the little of it a test needs: the handshake, unfragmented
 * text and binary frames up to 64 KiB, close). No WebSocket server library is installed, and Node has only the
 * client; the proxy under test never parses frames, so this app only has to satisfy Node's own WebSocket client.
 * `GET /forbidden` is refused with 403, the way an app turns down a handshake.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/** RFC 6455 section 1.3: the GUID appended to Sec-WebSocket-Key. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface WsEchoApp {
  readonly server: Server;
  readonly url: string;
  /** Handshake requests as the app received them (headers included), in order. */
  readonly handshakes: IncomingMessage[];
  close(): Promise<void>;
}

/** One server frame (never masked) with `opcode` and `payload`. */
function frame(opcode: number, payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}

/** Echoes every data frame of `socket` back; answers a close frame with one and ends. */
function echo(socket: Duplex): void {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      if (pending.length < 2) return;
      const opcode = pending[0]! & 0x0f;
      let length = pending[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (pending.length < 4) return;
        length = pending.readUInt16BE(2);
        offset = 4;
      }
      if (pending.length < offset + 4 + length) return;
      const mask = pending.subarray(offset, offset + 4);
      const payload = Buffer.from(pending.subarray(offset + 4, offset + 4 + length));
      for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
      pending = pending.subarray(offset + 4 + length);
      if (opcode === 0x8) {
        socket.end(frame(0x8, payload));
        return;
      }
      if (opcode === 0x1 || opcode === 0x2) socket.write(frame(opcode, payload));
    }
  });
  socket.on('error', () => socket.destroy());
}

/** Starts the app; plain requests go to `onRequest` (default: 426, a WebSocket is expected). */
export async function startWsEchoApp(
  onRequest: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(426, { upgrade: 'websocket' });
    res.end();
  },
): Promise<WsEchoApp> {
  const handshakes: IncomingMessage[] = [];
  const sockets = new Set<Duplex>();
  const server = createServer(onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    handshakes.push(req);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (req.url === '/forbidden') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 9\r\nconnection: close\r\n\r\nforbidden');
      return;
    }
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${GUID}`).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
    );
    echo(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    handshakes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Waits for a client WebSocket to open, sends `text` and resolves with the first message it gets back.
 * @throws (rejects) when the socket reports an error before it opens
 */
export async function echoOnce(socket: WebSocket, text: string): Promise<string> {
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', reject, { once: true });
  });
  const echoed = new Promise<string>((resolve) => socket.addEventListener('message', (e) => resolve(String(e.data)), { once: true }));
  socket.send(text);
  return echoed;
}
