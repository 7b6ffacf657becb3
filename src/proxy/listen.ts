/**
 * Starts an HTTP server listening, the one way the proxy, the router and the admin server do it.
 */
import type { Server } from 'node:http';
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
