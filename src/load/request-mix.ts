/**
 * The request side of a run: the profile's weighted mix as the sequence autocannon cycles through, and the version
 * a response names (a header, else a top-level field of a JSON body).
 */
import type { LoadProfile, ProfileRequest } from './profile.ts';
import { ALL } from './recorder.ts';

/** The request mix as a sequence autocannon cycles through: a smooth weighted round robin (3:1 gives A A B A ...). */
export function mixSequence(requests: readonly ProfileRequest[]): ProfileRequest[] {
  const total = requests.reduce((sum, r) => sum + r.weight, 0);
  const credit = requests.map(() => 0);
  const out: ProfileRequest[] = [];
  for (let n = 0; n < total; n++) {
    let best = 0;
    requests.forEach((r, i) => {
      credit[i]! += r.weight;
      if (credit[i]! > credit[best]!) best = i;
    });
    credit[best]! -= total;
    out.push(requests[best]!);
  }
  return out;
}

/**
 * The version a response names: the header first, else the JSON body's top-level field; null when neither.
 * @param headers response headers, lower-case names (autocannon's key-value form)
 */
export function versionOf(body: string, headers: Readonly<Record<string, unknown>>, versions: LoadProfile['versions']): string | null {
  if (versions.header !== undefined) {
    const value = headers[versions.header];
    if (typeof value === 'string' && value !== '') return value;
  }
  if (versions.jsonField === '' || body.length === 0 || body.length > 65_536 || body.charCodeAt(0) !== 123 /* { */) return null;
  try {
    const value = (JSON.parse(body) as Record<string, unknown>)[versions.jsonField];
    return typeof value === 'string' && value !== '' && value !== ALL ? value : null;
  } catch {
    return null;
  }
}
