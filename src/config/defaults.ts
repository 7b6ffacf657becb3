/**
 * Every default of canary-gate in one object (pino's `defaultOptions` habit). The config file is merged over it,
 * then the environment over that, then the schema validates the result once.
 * Units: durations are strings with a unit (`5s`, `250ms`) or numbers of ms; ratios are 0..1.
 * Sources of the policy defaults: the rollout plans this product serves (issue 2): p95 1.5 x baseline, errors 2 x
 * baseline, 500 ms and 5 % absolute; 1 % false rollbacks per 2 h rollout (issue 12); 1 consecutive breach, since the
 * sequential statistics accumulate evidence themselves (README, "How the gate decides").
 */
import { SEQUENTIAL_CHECKS, type SequentialCheckName } from '../core/checks.ts';

export const DEFAULTS = {
  /** Service name; every Redis key carries it as a `{service}` hash tag. */
  service: 'demo-api',
  pod: {
    /** This pod's name, unique in the fleet (Kubernetes: metadata.name via the downward API). Empty: the host name. */
    name: '',
    /** This pod's version, e.g. `v1` (baseline) or `v2` (canary). */
    version: 'v1',
  },
  versions: {
    baseline: 'v1',
    canary: 'v2',
    /** Versions named by each GET /v1/analysis request (Argo Rollouts' pod-template hashes); pod.version may be any name. */
    namedByRequest: false,
  },
  proxy: {
    host: '0.0.0.0',
    port: 8080,
    /**
     * What the proxy's port speaks: `http1` (HTTP/1.1, WebSocket upgrades tunnelled) or `h2c` (HTTP/2 in cleartext with
     * prior knowledge, as gRPC clients and meshes send it; no HTTP/1.1 on that port).
     */
    protocol: 'http1' as 'http1' | 'h2c',
    /** The app, usually on localhost in the same pod. */
    upstream: 'http://127.0.0.1:3000',
    /** What the proxy speaks to the app: `http1`, or `h2c` (HTTP/2 with prior knowledge: a gRPC server needs it). */
    upstreamProtocol: 'http1' as 'http1' | 'h2c',
    /** Upstream keep-alive connections in the undici Pool. */
    connections: 128,
    connectTimeout: '2s',
    /** Time to the upstream's response headers; exceeded: 504. undici checks it on a ~0.5 s timer: below 1 s it is coarse. */
    headersTimeout: '30s',
    /** Idle time between body chunks from the upstream; exceeded: the response is cut and counted as an error. */
    bodyTimeout: '30s',
    keepAliveTimeout: '4s',
    /** Time a client has to send a request's headers; slower (slowloris): 408 and the connection closed. */
    clientHeadersTimeout: '10s',
    /**
     * Longest wait for a free upstream connection: the proxy keeps at most `connections` requests upstream and queues
     * the rest, first come first served; past this: 503 `overloaded`, the sidecar's saturation, not the version's error.
     */
    queueTimeout: '5s',
    /** Longest time a request body may send nothing while the proxy reads it; slower: 408 and the connection closed. */
    clientBodyTimeout: '10s',
    /**
     * Slowest request body, bytes per second, after a grace of clientBodyTimeout (1 s while other requests wait for an
     * upstream connection); slower: 408. 0: off.
     */
    clientBodyMinRate: 500,
    /** Clients (IPs or CIDR ranges) whose X-Forwarded-Proto is kept; everyone else's is replaced by the proxy's. */
    trustedProxies: [] as string[],
    /** Status classes (`5xx`) or codes (`429`) counted as errors. */
    errorStatuses: ['5xx'] as string[],
    /**
     * gRPC status codes (from the `grpc-status` trailer, whatever the HTTP status) counted as errors of the version.
     * Default: those the gRPC retry guidance and OpenTelemetry's rpc conventions treat as server faults: UNKNOWN 2,
     * DEADLINE_EXCEEDED 4, UNIMPLEMENTED 12, INTERNAL 13, UNAVAILABLE 14, DATA_LOSS 15.
     */
    grpcErrorCodes: [2, 4, 12, 13, 14, 15] as number[],
    /** Route templates (URLPattern pathname syntax, `/users/:id`) reported as `http.route`; unmatched paths get none. */
    routes: [] as string[],
    /**
     * TLS on the proxy's port: PEM files of the certificate (chain) and its private key, read at start-up; both empty:
     * cleartext. With both set the port serves HTTPS and negotiates h2 or http/1.1 by ALPN (protocol must stay http1).
     * The files are read again every `reloadInterval` (ms; 0: never) and a changed, valid pair is served to new
     * connections (a rotated Kubernetes Secret, cert-manager).
     */
    tls: {
      certFile: '',
      keyFile: '',
      /** CA certificates (PEM) of the clients' certificates: mutual TLS; empty: none asked for. */
      clientCaFile: '',
      reloadInterval: 30_000,
    },
  },
  admin: {
    host: '0.0.0.0',
    port: 9090,
  },
  redis: {
    /** `standalone` (one server), `cluster` (a Redis Cluster) or `sentinel` (a primary that Sentinels manage). */
    mode: 'standalone' as 'standalone' | 'cluster' | 'sentinel',
    url: 'redis://127.0.0.1:6379',
    /** Cluster seed nodes or Sentinels as host:port; empty: the hosts of `url`. */
    nodes: [] as string[],
    /** Sentinel mode: the primary's name at the Sentinels; empty: the path of a redis+sentinel:// URL. */
    masterName: '',
    /** Sentinel mode: the Sentinels' own password (`requirepass` in sentinel.conf); empty: they are asked without one. */
    sentinelPassword: '',
    /** Prefix of every key canary-gate writes (the flag key excepted). */
    keyPrefix: 'canary-gate',
    commandTimeout: '500ms',
    connectTimeout: '1s',
  },
  window: {
    /** Slot length; slots align on the wall-clock epoch. */
    slot: '5s',
    /** Slots per rolling window (12 x 5 s = 60 s). */
    slots: 12,
    /** Sealed slots kept in memory while Redis is away (oldest dropped first, and counted). */
    publishBuffer: 120,
  },
  evaluation: {
    /** Whether this sidecar competes for the evaluator lease. */
    enabled: true,
    /** Wait after each slot boundary before evaluating, so the fleet's slots have arrived. */
    delay: '1s',
    /** Evaluator lease time to live; renewed every third of it. */
    leaseTtl: '15s',
  },
  policy: {
    /** Judge and record everything, but write would-be rollbacks to the dry-run key, never the flag. */
    advisory: false,
    minSamples: 100,
    /** Failing evaluations in a row before the rollback; the sequential statistics already accumulate evidence. */
    consecutiveBreaches: 1,
    /** Failing evaluations in a row from no-data rules alone (a silent canary, an unreachable Redis) before the rollback. */
    consecutiveNoData: 3,
    latency: {
      relativeP95: 1.5,
      /** Thresholds-only and window methods; the sequential method warns on its own statistic. */
      warnRelativeP95: 1.25,
      absoluteP95: '500ms',
      /** Off (0) unless a rollout plan names them. */
      relativeP50: 0,
      relativeP99: 0,
      absoluteP50: 0 as number | string,
      absoluteP99: 0 as number | string,
    },
    errors: {
      relativeRatio: 2,
      baselineFloor: 0.001,
      absoluteRatio: 0.05,
      warnRatio: 0.005,
    },
    /** What each cause of missing data does: hold (inconclusive), rollback (a failing evaluation) or pass. */
    noData: {
      noTraffic: 'hold',
      canaryMissing: 'rollback',
      baselineMissing: 'hold',
      redisUnreachable: 'hold',
    } as Record<'noTraffic' | 'canaryMissing' | 'baselineMissing' | 'redisUnreachable', 'hold' | 'rollback' | 'pass'>,
    /** The canary's share of traffic falling this far below the flag's fails the throughput check (0: off). */
    throughput: { drop: 0 },
    /** Per check, how long a breach must hold before it fails (0: at once). */
    for: Object.fromEntries(SEQUENTIAL_CHECKS.map((name) => [name, 0 as number | string])) as Record<SequentialCheckName, number | string>,
    /** Sample-ratio mismatch p-value below which the relative checks are held (0 disables). */
    trafficShareAlpha: 0.0005,
    statistics: {
      /** Bounded-error tests on every check (src/core/statistics.ts); off: thresholds only. */
      enabled: true,
      /**
       * `sequential`: a CUSUM per check, two for the relative error check (src/core/detector.ts); `window`: the
       * previous per-window Bonferroni tests.
       */
      method: 'sequential' as 'sequential' | 'window',
      /** Share of a healthy canary's evaluations that may warn, all checks together, 0..1. */
      warnRate: 0.02,
      /** Probability of rolling back a healthy canary over one rollout of `horizon`, 0..1. */
      falseRollbackRate: 0.01,
      /** Rollout length the false-rollback rate covers; the per-evaluation alpha is spent over it. */
      horizon: '2h',
      /** A canary error ratio above this (with at least 10 errors) fails without waiting for the test. */
      grossErrorRatio: 0.5,
    },
  },
  flag: {
    /**
     * The key traffic routers read: the canary's traffic percentage. `<service>` stands for the service's name, so each
     * service has its own flag in its own hash slot; `feature:v2_traffic_percentage` was the default before.
     */
    key: 'feature:{<service>}:v2_traffic_percentage',
    /** Value written on rollback. */
    rollbackValue: '0',
    /** Entries kept in the audit stream (approximate, XADD MAXLEN ~). */
    auditMaxLen: 1000,
  },
  /**
   * `canary-gate route`: sends each request to the baseline or the canary upstream by the flag's weight. It forwards
   * with the proxy's upstream settings (proxy.connections and the proxy's timeouts).
   */
  router: {
    host: '0.0.0.0',
    port: 8000,
    /** Its own admin server (/metrics, /status, /healthz, /readyz), apart from the traffic port. */
    adminHost: '0.0.0.0',
    adminPort: 9091,
    baselineUpstream: 'http://127.0.0.1:8081',
    canaryUpstream: 'http://127.0.0.1:8082',
    /** How often the flag is read besides the events the gate publishes; a change reaches the router within it. */
    pollInterval: '1s',
    /** Keep a user on one version by hashing this request header's value; empty: off. */
    stickyHeader: '',
    /** Or this cookie's value (the header wins when both are present); empty: off. */
    stickyCookie: '',
  },
  /**
   * `canary-gate rollout start`: the weights a rollout steps through, in Argo Rollouts' vocabulary (`{setWeight: 5}`,
   * `{pause: {duration: 10m}}`, `{pause: {}}` = wait for a person). The lease holder promotes to the next weight only
   * on evidence: at least minStepTime (or the step's pause) at the weight, a `pass` verdict, and enough canary
   * requests that the sequential checks would have detected the configured regressions at this traffic.
   */
  rollout: {
    steps: [{ setWeight: 1 }, { setWeight: 5 }, { setWeight: 25 }, { setWeight: 50 }, { setWeight: 100 }] as unknown[],
    /** Least time at each weight before a promotion, whatever the evidence (a pause with a duration lengthens it). */
    minStepTime: '5m' as number | string,
  },
  log: {
    level: 'info',
  },
};

/**
 * Short environment names for the fields operators set most (Kubernetes manifests, the demo). Every field also has
 * a long name: `CANARY_GATE_` + its path in UPPER_SNAKE (`policy.latency.relativeP95` ->
 * `CANARY_GATE_POLICY_LATENCY_RELATIVE_P95`). A long name wins over a short one.
 */
export const ENV_ALIASES: Readonly<Record<string, string>> = {
  REDIS_URL: 'redis.url',
  POD_NAME: 'pod.name',
  POD_VERSION: 'pod.version',
  UPSTREAM_URL: 'proxy.upstream',
  PROXY_PORT: 'proxy.port',
  ADMIN_PORT: 'admin.port',
  SERVICE_NAME: 'service',
};

/** Holds the bearer token of POST /rollback and POST /reset. Never in the config file; unset disables them. */
export const ADMIN_TOKEN_ENV = 'CANARY_GATE_ADMIN_TOKEN';
