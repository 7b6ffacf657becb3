/**
 * The rollout controls on the admin server, through its extension point (`AdminHandlers.routes`):
 *
 *   GET  /rollout/status                                  the rollout, its evidence and what the next promotion waits for
 *   POST /rollout/start    {"actor": "...", "reason": "..."}
 *   POST /rollout/promote  {"actor": "...", "reason": "...", "full": true | "weight": 50}
 *   POST /rollout/pause | /rollout/resume | /rollout/abort  {"actor": "...", "reason": "..."}
 *
 * The POST routes sit behind the bearer token (403 without one configured, 401 on a wrong one). `actor` and `reason`
 * are required (400 without them) and both go to the audit stream; the caller's address is appended to the actor. A
 * weight goes through parseWeight (an integer 0..100, else 400). A refused command answers 409 with the reason.
 */
import { cleanText } from '../core/text.ts';
import { parseWeight } from '../core/weight.ts';
import type { AdminReply, AdminRoute } from '../metrics/admin-server.ts';
import { ROLLOUT_COMMANDS, type ControlRequest, type RolloutCommand, type RolloutControl } from './control.ts';

const bad = (error: string): AdminReply => ({ status: 400, body: { error } });

/**
 * Reads a command's body.
 * @returns the request, or the reason it is refused (answered 400)
 */
export function parseControlBody(command: RolloutCommand, text: string, remote: string): ControlRequest | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text === '' ? '{}' : text);
  } catch {
    return 'body must be JSON';
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'body must be a JSON object';
  const b = raw as Record<string, unknown>;
  const allowed = command === 'promote' ? ['actor', 'reason', 'full', 'weight'] : ['actor', 'reason'];
  const unknown = Object.keys(b).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) return `unknown field ${unknown[0]}: ${command} takes ${allowed.join(', ')}`;
  for (const field of ['actor', 'reason'] as const) {
    const value = b[field];
    if (typeof value !== 'string' || cleanText(value, 500).trim() === '')
      return `${field} is required: a non-empty string (it goes to the audit stream)`;
  }
  if (b.full !== undefined && typeof b.full !== 'boolean') return 'full must be true or false';
  let toWeight: number | undefined;
  if (b.weight !== undefined) {
    const weight = parseWeight(b.weight);
    if (!weight.ok) return `weight ${weight.reason}`;
    toWeight = weight.weight;
  }
  if (b.full === true && toWeight !== undefined) return 'give full or weight, not both';
  return {
    // Control and bidi characters go before anything is stored (the audit stream, `explain`, notifications).
    actor: `${cleanText(b.actor as string, 100).trim()}@${remote}`,
    reason: cleanText(b.reason as string, 500).trim(),
    full: b.full === true,
    toWeight,
  };
}

/** The admin routes of the rollout controls. */
export function rolloutRoutes(control: RolloutControl): AdminRoute[] {
  const routes: AdminRoute[] = [
    { method: 'GET', path: '/rollout/status', auth: false, handle: async () => ({ status: 200, body: await control.view() }) },
  ];
  for (const command of ROLLOUT_COMMANDS) {
    routes.push({
      method: 'POST',
      path: `/rollout/${command}`,
      auth: true,
      async handle({ body, remote }) {
        const request = parseControlBody(command, body, remote);
        if (typeof request === 'string') return bad(request);
        const result = await control.apply(command, request);
        return result.outcome === 'written'
          ? {
              status: 200,
              body: { outcome: result.record.kind, weight: result.state.weight, status: result.state.status, flag: result.flag },
            }
          : { status: 409, body: { outcome: 'refused', error: result.reason } };
      },
    });
  }
  return routes;
}
