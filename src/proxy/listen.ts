/**
 * Starting and draining an HTTP server, the one way the proxy and the router do both.
 */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * Listens on `host:port` (port 0 picks a free one).
 * @returns the address bound: the port actually taken and the host
 * @throws the server's error (EADDRINUSE, EACCES) when it cannot listen
 */
export function listenOn(server: Server, port: number, host: string): Promise<{ port: number; host: string }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve({ port: address.port, host: address.address });
    });
  });
}

/**
 * Waits for a server's in-flight requests to end, at most `drainMs`: `setOnIdle` receives the callback the server calls
 * when its last request ends (and null once the wait is over).
 */
export async function waitIdle(setOnIdle: (onIdle: (() => void) | null) => void, drainMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    setOnIdle(resolve);
    timer = setTimeout(resolve, drainMs);
  });
  clearTimeout(timer);
  setOnIdle(null);
}
