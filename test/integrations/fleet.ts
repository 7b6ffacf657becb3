/**
 * Sidecar pairs for the integration contract tests: a baseline pod and a canary pod of a test service on a real Redis
 * (the shared one, or a private redis-server the test can stop), with real upstreams whose error share is set per pod,
 * and load sent through their proxies. Built on test/helpers/sidecar-fleet.ts; everything is stopped after each test.
 */
import { request } from 'undici';
import type { EvaluationEvent } from '../../src/app/evaluator.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import type { Verdict } from '../../src/core/verdict.ts';
import { client, dropService, REDIS_URL, sleep } from '../helpers/redis.ts';
import { cleanups, configFor, type Pod, startPod } from '../helpers/sidecar-fleet.ts';
import { startUpstream } from '../helpers/upstream.ts';

/** An upstream whose every `errorEvery`-th answer is 503 (1: all, 0: none); `setErrorEvery` changes it. */
export async function upstreamFailing(errorEvery: number): Promise<{ url: string; setErrorEvery(n: number): void }> {
  let n = 0;
  let every = errorEvery;
  const u = await startUpstream((_req, res) => {
    n++;
    res.writeHead(every > 0 && n % every === 0 ? 503 : 200);
    res.end('x');
  });
  cleanups.push(() => u.close());
  return {
    url: u.url,
    setErrorEvery: (next) => {
      every = next;
    },
  };
}

/** A private redis-server, stopped after the test (or by the test). */
export async function privateRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const server = await startRedisServer();
  cleanups.push(() => server.stop());
  return server;
}

export interface PairOptions {
  readonly baseline: string;
  readonly canary: string;
  /** Every n-th canary answer is a 503 (1: all, 0: none). */
  readonly canaryErrorEvery?: number;
  /** Environment on top of the test config of test/helpers/sidecar-fleet.ts. */
  readonly env?: Record<string, string>;
  readonly redisUrl?: string;
}

export interface SidecarPair {
  readonly service: string;
  readonly baseline: Pod;
  readonly canary: Pod;
  readonly pods: readonly Pod[];
  /** Every verdict a lease holder of this pair reached, by the end of its window (atMs). */
  readonly holderVerdicts: Map<number, Verdict>;
  /** Changes the canary upstream's error share (every n-th answer a 503; 0: none). */
  setCanaryErrorEvery(n: number): void;
}

/** Starts a baseline pod and a canary pod of a fresh service; their keys are dropped after the test. */
export async function sidecarPair(service: string, options: PairOptions): Promise<SidecarPair> {
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const env = {
    REDIS_URL: redisUrl,
    CANARY_GATE_VERSIONS_BASELINE: options.baseline,
    CANARY_GATE_VERSIONS_CANARY: options.canary,
    CANARY_GATE_POLICY_ADVISORY: 'true',
    // A 10 s window: the scenarios send their requests once and read the answers while those slots are in it.
    CANARY_GATE_WINDOW_SLOTS: '40',
    // The verdicts here come from error shares the tests set exactly. The latency of loopback upstreams on a shared
    // machine is not controlled (two healthy pods' p95s differ by more than 1.5 x at times): its thresholds are out
    // of reach and its warning off, so that a pass stays a pass.
    CANARY_GATE_POLICY_LATENCY_RELATIVE_P95: '1000',
    CANARY_GATE_POLICY_LATENCY_WARN_RELATIVE_P95: '0',
    CANARY_GATE_POLICY_LATENCY_ABSOLUTE_P95: '60s',
    ...options.env,
  };
  const redis = await client(redisUrl);
  cleanups.push(async () => {
    await dropService(redis, 'cg-test', service, `cg-test:flag:{${service}}`).catch(() => undefined);
    redis.disconnect();
  });
  const holderVerdicts = new Map<number, Verdict>();
  const onEvaluation = (event: EvaluationEvent): void => {
    if (event.verdict) holderVerdicts.set(event.verdict.atMs, event.verdict);
  };
  const baselineUpstream = await upstreamFailing(0);
  const canaryUpstream = await upstreamFailing(options.canaryErrorEvery ?? 0);
  const baseline = await startPod(configFor(service, 'b1', options.baseline, baselineUpstream.url, env), { onEvaluation });
  const canary = await startPod(configFor(service, 'c1', options.canary, canaryUpstream.url, env), { onEvaluation });
  return { service, baseline, canary, pods: [baseline, canary], holderVerdicts, setCanaryErrorEvery: canaryUpstream.setErrorEvery };
}

/** Sends `n` requests through a pod's proxy, `concurrency` at a time. */
export async function load(pod: Pod, n: number, concurrency = 4): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const res = await request(`${pod.proxy}/item/${next}`);
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Sends requests through both pods until `stop()`; resolves with how many were sent. */
export function steadyLoad(pods: readonly Pod[]): { stop(): Promise<number> } {
  let running = true;
  let sent = 0;
  const loops = pods.map(async (pod) => {
    while (running) {
      const res = await request(`${pod.proxy}/item/${sent}`);
      await res.body.dump();
      sent++;
      await sleep(2);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return sent;
    },
  };
}

/** GET /v1/analysis on a pod's admin port; `query` as Argo's template would give it. */
export async function analysis(pod: Pod, query: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await request(`${pod.admin}/v1/analysis?${new URLSearchParams(query)}`);
  const text = await res.body.text();
  return { status: res.statusCode, body: res.headers['content-type']?.toString().includes('json') ? JSON.parse(text) : text };
}
