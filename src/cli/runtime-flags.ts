/**
 * V8 flags the sidecar sets on itself, before the rest of the CLI's module graph loads (main.ts imports this module
 * first; ES modules evaluate their imports in order).
 *
 * `--no-allocation-site-pretenuring`: with V8's default, once a process holds a few tens of MB of long-lived objects
 * (the sidecar's module graph is enough), young-generation scavenges keep about 10 MB of a proxy's per-request garbage
 * alive each time and copy it into the old generation: 20-30 ms pauses about once a second under load, the tail of
 * every proxied request that meets one. Measured here (bench/README.md, "proxy-overhead"; the note of issue 14): a bare
 * undici proxy carrying 30 MB of ballast kept 3.9 MB per scavenge with 8.5-9 ms pauses, 0.14-0.29 MB and 1.4-1.9 ms
 * with this flag, as without the ballast; the sidecar under wrk kept 10 MB (pauses 28-29 ms), 3.5 MB (10 ms) with it,
 * the rest being its Set of responses in flight (now slots, src/proxy/in-flight.ts): 0.1 MB and 0.4-0.5 ms with both.
 * V8 reads this flag at every collection, so setting it at run time takes effect (unlike heap sizes, such as
 * `--max-semi-space-size`, which must be on the command line: the Dockerfile and `npm start` pass it there).
 */
import { setFlagsFromString } from 'node:v8';

/** The flags, in the order they are set. */
export const V8_RUNTIME_FLAGS = ['--no-allocation-site-pretenuring'] as const;

for (const flag of V8_RUNTIME_FLAGS) setFlagsFromString(flag);
