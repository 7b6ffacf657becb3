/**
 * Flagger webhooks on the admin port: `POST /v1/flagger/<hook type>` (README, "Flagger"; deploy/flagger/canary.yaml).
 *
 * What Flagger sends and how it reads the answer (fluxcd/flagger at 15bd6ad5: pkg/controller/webhook.go,
 * scheduler_hooks.go, scheduler.go, events.go, pkg/apis/flagger/v1beta1/canary.go):
 * - a POST with `Content-Type: application/json` and the body `{"name", "namespace", "phase", "checksum",
 *   "metadata"}` (CanaryWebhookPayload; metadata is the webhook's own key-value map, omitted when empty; event hooks
 *   add `eventMessage`, `eventType` and `timestamp`). The checksum hashes the Canary's TrackedConfigs and
 *   LastAppliedSpec: it changes with every new revision.
 * - success is a status of at most 202 (`if r.StatusCode > 202` is the error); the client is go-retryablehttp with
 *   the webhook's `retries`, which retries 5xx answers and connection errors, so a "no" here is a 403, never a 5xx.
 * - `rollback` is called on every analysis interval while the canary is Progressing, Waiting or WaitingPromotion;
 *   success stops the analysis and rolls the canary back.
 * - `confirm-rollout` (before the canary is scaled up), `confirm-traffic-increase` (before each weight step) and
 *   `confirm-promotion` (before promotion) halt the rollout, without counting a failed check, until they succeed.
 *   Flagger records a fixed "Halt ... waiting for approval" event for them; the answer's body (the explanation) is in
 *   canary-gate's log and in `GET /v1/analysis`.
 * - `event` is called with every Kubernetes event Flagger records for the canary; its answer is only logged.
 *
 * Versions follow Flagger's naming: `<name>-primary` is the baseline, `<name>` the canary (metadata `baseline` and
 * `canary` override them). Answers:
 *   rollback                                          200 when the gate decided fail (the latch; on demand: a fail), else 403
 *   confirm-traffic-increase, confirm-promotion       200 on pass or warn, else 403 with the explanation
 *   confirm-rollout                                   200 unless the gate cannot judge (Redis unreachable), else 403
 *   event                                             200; a new checksum clears the previous revision's latch
 * A malformed payload is 400.
 *
 * Revisions: every hook carries the checksum, and the one stored under `<prefix>:{<service>}:revision` is the
 * revision the latch belongs to. A hook whose checksum differs records it when nothing is latched; while something is,
 * the latch is the previous revision's and does not apply to this one (no rollback on it; the confirm hooks follow the
 * judge's own outcome) until the event hook clears it (with the admin token) or a person resets it. Flagger updates the
 * checksum only after confirm-rollout succeeds (scheduler.go, checkCanaryStatus: SyncStatus after the gate), so
 * confirm-rollout still carries the previous revision's checksum and must not wait on its latch.
 */
import type { AdminReply, AdminRoute, AdminRouteRequest } from '../metrics/admin-server.ts';
import { bearerMatches } from '../metrics/admin-server.ts';
import type { Logger } from '../config/logger.ts';
import { checkRows, versionNameProblem, type Judgement, type VersionPair } from './judgement.ts';

/** Flagger's hook types this sidecar answers (HookType in flagger's canary.go). */
export const FLAGGER_HOOKS = ['rollback', 'confirm-rollout', 'confirm-traffic-increase', 'confirm-promotion', 'event'] as const;
export type FlaggerHook = (typeof FLAGGER_HOOKS)[number];

/** The path of a hook on the admin port. */
export const flaggerPath = (hook: FlaggerHook): string => `/v1/flagger/${hook}`;

/** Flagger's CanaryWebhookPayload. */
export interface FlaggerPayload {
  readonly name: string;
  readonly namespace: string;
  readonly phase: string;
  readonly checksum: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Parses a hook's body. @returns the payload, or the reason it is refused (400) */
export function parsePayload(text: string): FlaggerPayload | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'body must be the JSON payload Flagger sends: {"name", "namespace", "phase", "checksum", "metadata"}';
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'body must be a JSON object';
  const b = raw as Record<string, unknown>;
  if (typeof b.name !== 'string' || b.name === '') return 'name (the Canary name) must be a non-empty string';
  for (const field of ['namespace', 'phase', 'checksum'] as const) {
    if (b[field] !== undefined && typeof b[field] !== 'string') return `${field} must be a string`;
  }
  const metadata = b.metadata ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return 'metadata must be an object of strings';
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') return `metadata.${k} must be a string`;
  return {
    name: b.name,
    namespace: (b.namespace as string | undefined) ?? '',
    phase: (b.phase as string | undefined) ?? '',
    checksum: (b.checksum as string | undefined) ?? '',
    metadata: metadata as Record<string, string>,
  };
}

/** The pair a payload names: `<name>-primary` against `<name>`, unless metadata.baseline / metadata.canary say otherwise. */
export function pairOf(payload: FlaggerPayload): VersionPair | string {
  const pair = { baseline: payload.metadata.baseline ?? `${payload.name}-primary`, canary: payload.metadata.canary ?? payload.name };
  return versionNameProblem('baseline', pair.baseline) ?? versionNameProblem('canary', pair.canary) ?? pair;
}

/**
 * Whether a hook succeeds for a judgement (Flagger reads <= 202 as success).
 * - `rollback` needs a fail the gate has decided on: for a pair a lease holder controls, its latch of this revision
 *   (after policy.consecutiveBreaches), not a first failing evaluation (breaching), not an on-demand fail while no
 *   fresh record is published, not a latch of the previous revision; for a pair no controller judges, a fail; with
 *   Redis unreachable, the fail policy.noData.redisUnreachable rollback gives (nobody can read a latch then).
 * - `confirm-rollout` runs before Flagger scales the canary up (scheduler.go: the gate, then "New revision detected!
 *   Scaling up"): there are no canary slots to judge yet, and the latch, if any, is the previous revision's. It
 *   succeeds unless the gate cannot judge: Redis unreachable, unless policy.noData.redisUnreachable is pass.
 * - `confirm-traffic-increase` and `confirm-promotion` succeed on pass or warn only.
 * @param latchApplies false when the latch belongs to a previous revision (see the module): the judge's own outcome counts
 */
export function hookSucceeds(hook: Exclude<FlaggerHook, 'event'>, j: Judgement, latchApplies = true): boolean {
  const verdict = latchApplies ? j.verdict : j.judged;
  if (hook === 'rollback') {
    const decided = !j.controlled || j.source === 'redis_unreachable' || (j.state === 'rolled_back' && latchApplies);
    return verdict === 'fail' && decided;
  }
  if (hook === 'confirm-rollout') return j.source !== 'redis_unreachable' || j.verdict === 'pass' || j.verdict === 'warn';
  return verdict === 'pass' || verdict === 'warn';
}

/** The one line a "no" carries, for Flagger's logs and ours. @param stale the previous revision, when its latch does not apply */
export function explanation(hook: Exclude<FlaggerHook, 'event'>, j: Judgement, stale: string | null = null): string {
  const what = hook === 'rollback' ? 'no rollback' : `${hook} withheld`;
  const where = j.state === null ? j.source : `${j.source}, ${j.state}`;
  const verdict = stale === null ? j.verdict : j.judged;
  const reason = stale === null ? j.reason : `the latch is revision ${stale}'s, not this one's; judged: ${j.judgedReason}`;
  return `canary-gate: ${what}: ${j.canary.version} vs ${j.baseline.version} is ${verdict} (${where}): ${reason}`;
}

/** What the event hook needs from the sidecar: the revision record, the latch and the published verdict. */
export interface RevisionControl {
  /** The revision stored now, or null. Rejects when Redis refuses. */
  currentRevision(): Promise<string | null>;
  /** Stores `checksum` as the current revision and returns the previous one (null if none). Rejects when Redis refuses. */
  swapRevision(checksum: string): Promise<string | null>;
  /** Whether a rollback (or dry-run rollback) is latched. Rejects when Redis refuses. */
  latched(): Promise<boolean>;
  /** Clears the latch as POST /reset does (flag untouched), and forgets the published verdict. Rejects when Redis refuses. */
  clear(actor: string, reason: string): Promise<void>;
}

export interface FlaggerOptions {
  readonly judge: (pair: VersionPair) => Promise<Judgement>;
  readonly revisions: RevisionControl;
  /** The admin token; the event hook clears a latch only when metadata.token carries it (Flagger sends no headers). */
  readonly adminToken: string | undefined;
  readonly logger: Logger;
}

/**
 * Records a hook's revision when nothing is latched. @returns the stored (previous) revision when the latch belongs to
 * it rather than to the payload's, else null. A Redis error leaves it to the judgement (answered as Redis unreachable).
 */
async function staleRevision(payload: FlaggerPayload, options: FlaggerOptions): Promise<string | null> {
  if (payload.checksum === '') return null;
  try {
    const current = await options.revisions.currentRevision();
    if (current === payload.checksum) return null;
    if (!(await options.revisions.latched())) {
      await options.revisions.swapRevision(payload.checksum);
      return null;
    }
    return current;
  } catch {
    return null;
  }
}

async function answerJudged(hook: Exclude<FlaggerHook, 'event'>, request: AdminRouteRequest, options: FlaggerOptions): Promise<AdminReply> {
  const payload = parsePayload(request.body);
  if (typeof payload === 'string') return { status: 400, body: payload };
  const pair = pairOf(payload);
  if (typeof pair === 'string') return { status: 400, body: pair };
  const [stale, j] = await Promise.all([staleRevision(payload, options), options.judge(pair)]);
  // A latch recorded for no known revision (current null) applies: it can only be this revision's or older.
  const latchApplies = stale === null || j.state !== 'rolled_back';
  if (hookSucceeds(hook, j, latchApplies)) {
    const verdict = latchApplies ? j.verdict : j.judged;
    return {
      status: 200,
      body: {
        hook,
        verdict,
        state: j.state,
        source: j.source,
        latchApplies,
        reason: latchApplies ? j.reason : j.judgedReason,
        checks: checkRows(j.checks),
      },
    };
  }
  const line = explanation(hook, j, latchApplies ? null : stale);
  options.logger.info({ hook, canary: `${payload.namespace}/${payload.name}`, verdict: j.verdict }, line);
  return { status: 403, body: `${line}\n` };
}

async function answerEvent(request: AdminRouteRequest, options: FlaggerOptions): Promise<AdminReply> {
  const payload = parsePayload(request.body);
  if (typeof payload === 'string') return { status: 400, body: payload };
  const canary = `${payload.namespace}/${payload.name}`;
  if (payload.checksum === '') return { status: 200, body: { revision: null, previous: null, newRevision: false, latchCleared: false } };
  const current = await options.revisions.currentRevision();
  if (current === payload.checksum)
    return { status: 200, body: { revision: current, previous: current, newRevision: false, latchCleared: false } };
  // The first revision seen only records itself: a latch from before it belongs to no revision this sidecar knows.
  const latched = current !== null && (await options.revisions.latched());
  const token = payload.metadata.token;
  if (latched && (!options.adminToken || token === undefined || !bearerMatches(`Bearer ${token}`, options.adminToken))) {
    options.logger.warn(
      { canary, revision: payload.checksum },
      'new revision, but the latch stays: metadata.token must carry the admin token',
    );
    return { status: 403, body: 'canary-gate: new revision seen; clearing the latch needs metadata.token = the admin token\n' };
  }
  // SET ... GET is atomic: of the pods that receive this event at once, only one sees the old checksum and clears.
  const previous = await options.revisions.swapRevision(payload.checksum);
  const newRevision = previous !== null && previous !== payload.checksum;
  if (newRevision && latched) {
    await options.revisions.clear(
      `flagger:${canary}`,
      `new revision ${payload.checksum} (was ${previous}): ${payload.metadata.eventMessage ?? 'flagger event'}`,
    );
    options.logger.warn({ canary, revision: payload.checksum, previous }, 'new revision: latch cleared');
  }
  return { status: 200, body: { revision: payload.checksum, previous, newRevision, latchCleared: newRevision && latched } };
}

/** The routes, one per hook type. Unauthenticated by header (Flagger cannot send one); see {@link FlaggerOptions.adminToken}. */
export function flaggerRoutes(options: FlaggerOptions): AdminRoute[] {
  return FLAGGER_HOOKS.map((hook) => ({
    method: 'POST' as const,
    path: flaggerPath(hook),
    auth: false,
    handle: (request: AdminRouteRequest) => (hook === 'event' ? answerEvent(request, options) : answerJudged(hook, request, options)),
  }));
}
