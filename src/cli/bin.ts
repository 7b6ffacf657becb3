#!/usr/bin/env node
/**
 * Entry point of the published `canary-gate` bin: checks the Node.js version before anything is imported (undici 8
 * and OpenTelemetry 0.30x fail at import time on older Node versions), then runs the CLI.
 */
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`canary-gate needs Node.js >= 22.18 (Node 24 LTS recommended); this is ${process.version}.\n`);
  process.exit(2);
}
await import('./main.ts');
