/**
 * Which clients may tell the app how the original request arrived: an ingress or load balancer in front of the pod
 * (config `proxy.trustedProxies`). Anyone else could claim `X-Forwarded-Proto: https` and pass an app's
 * "HTTPS only" check, so the proxy replaces what they sent with its own.
 */
import { BlockList, isIP } from 'node:net';

/** An IPv4 client of a dual-stack listener shows as `::ffff:10.0.0.7`; ranges are written for `10.0.0.7`. */
const MAPPED_IPV4 = '::ffff:';

/**
 * @param entries IP addresses (`10.0.0.7`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`), validated by the config schema
 * @returns whether a socket's remote address is one of them; always false for an empty list or an unknown address
 * @throws Error naming the entry when it is neither (the config schema refuses those first)
 */
export function createTrustedProxies(entries: readonly string[]): (address: string | undefined) => boolean {
  if (entries.length === 0) return () => false;
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address);
    if (family === 0) throw new Error(`proxy.trustedProxies: ${JSON.stringify(entry)} is not an IP address or a CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return (address) => {
    if (address === undefined) return false;
    const plain = address.startsWith(MAPPED_IPV4) && address.includes('.') ? address.slice(MAPPED_IPV4.length) : address;
    const family = isIP(plain);
    return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  };
}
