/**
 * Clients that are slow on purpose, on raw sockets (HTTP clients buffer for us): one that trickles its request body,
 * one that reads its response slowly. Each resolves with what it got once the proxy closed or answered.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** The status line's code, 0 when the connection closed before one. */
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Bytes of the response read (head included). */
  readonly bytes: number;
  /** Whether the server closed the connection (its FIN arrived) rather than the client after a whole answer. */
  readonly closedByServer: boolean;
}

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers };
}

/**
 * Collects a response on `socket` until its Content-Length has arrived (then waits for the server to close when it
 * said `connection: close`), or until the server closes; `onChunk` runs after every chunk but the last.
 */
function collect(socket: Socket, onChunk?: (socket: Socket) => void): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let head = '';
    let headDone = false;
    let bytes = 0;
    let parsed = { status: 0, headers: {} as Record<string, string> };
    let bodyBytes = 0;
    let closedByServer = false;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ ...parsed, bytes, closedByServer });
    };
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (!headDone) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        headDone = true;
        parsed = parseHead(head.slice(0, end));
        bodyBytes = head.length - end - 4;
      } else {
        bodyBytes += d.length;
      }
      const length = Number(parsed.headers['content-length'] ?? NaN);
      if (bodyBytes >= length) {
        if (parsed.headers.connection !== 'close') finish();
        return;
      }
      onChunk?.(socket);
    });
    socket.on('end', () => {
      closedByServer = true;
      finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', finish);
  });
}

/**
 * POSTs `bodyBytes` bytes to `path`, one byte every `intervalMs` (the first after one interval), then reads the
 * answer. Stops sending when the server answers or closes first.
 * @param hold when given, the body stops after `bodyBytes - 1` bytes and the last byte waits until it resolves
 */
export function trickleUpload(port: number, path: string, bodyBytes: number, intervalMs: number, hold?: Promise<void>): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  socket.write(`POST ${path} HTTP/1.1\r\nhost: slow.example\r\ncontent-type: text/plain\r\ncontent-length: ${bodyBytes}\r\n\r\n`);
  let sent = 0;
  let answered = false;
  const timer = setInterval(() => {
    if (answered || socket.destroyed) return void clearInterval(timer);
    if (hold !== undefined && sent === bodyBytes - 1) {
      clearInterval(timer);
      void hold.then(() => {
        if (!socket.destroyed) socket.write('x');
      });
      return;
    }
    socket.write('x');
    if (++sent === bodyBytes) clearInterval(timer);
  }, intervalMs);
  return collect(socket).then((answer) => {
    answered = true;
    clearInterval(timer);
    return answer;
  });
}

/**
 * GETs `path` and reads the response slowly: it reads nothing for `stallMs` after the first bytes (the kernel's
 * receive buffer cannot grow while nothing is read, so the sender soon has to wait), then pauses `pauseMs` after
 * each chunk, until the whole body has arrived, the connection closes, or `giveUp` resolves.
 */
export function slowRead(port: number, path: string, pauseMs: number, stallMs = pauseMs, giveUp?: Promise<void>): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1');
  // What the proxy already sent stays in the kernel's buffers after it cut the connection: reading that at this pace
  // could take minutes, so the client may give up (what it got so far is the answer).
  void giveUp?.then(() => socket.destroy());
  socket.write(`GET ${path} HTTP/1.1\r\nhost: slow.example\r\n\r\n`);
  let first = true;
  return collect(socket, (s) => {
    s.pause();
    setTimeout(() => s.resume(), first ? stallMs : pauseMs);
    first = false;
  });
}

/** The nearest-rank quantile of `values` (q in 0..1), as the HDR histograms report it. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}
