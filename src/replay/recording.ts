/**
 * Recordings of a fleet: NDJSON, one JSON object per line, in the order they were seen.
 *
 *   {"kind":"meta","service":"checkout","baseline":"v1","canary":"v2","slotMs":5000,"slots":12}   first line
 *   {"kind":"slot","version":"v2","slot":359078361,"pod":"checkout-v2-a","payload":"{\"v\":1,...}"}  a pod's sealed slot, as stored in Redis
 *   {"kind":"flag","slot":359078361,"percent":5}                                                  the flag when that slot was judged (null: unset)
 *
 * `canary-gate record` writes them from a live fleet (src/replay/record.ts); `replay` and `tune` read them.
 */
import { readFile } from 'node:fs/promises';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';

export interface RecordingMeta {
  readonly kind: 'meta';
  readonly service: string;
  readonly baseline: string;
  readonly canary: string;
  /** Slot length, ms. */
  readonly slotMs: number;
  /** Slots per window when recorded (replay may use another). */
  readonly slots: number;
}
export interface RecordedSlot {
  readonly kind: 'slot';
  readonly version: string;
  readonly slot: number;
  readonly pod: string;
  /** The slot payload as stored in Redis (src/core/slot-payload.ts). */
  readonly payload: string;
}
export interface RecordedFlag {
  readonly kind: 'flag';
  readonly slot: number;
  /** The canary's traffic percentage 0..100, null when unset. */
  readonly percent: number | null;
}
export type RecordingLine = RecordingMeta | RecordedSlot | RecordedFlag;

export interface Recording {
  readonly name: string;
  readonly meta: RecordingMeta;
  readonly slots: readonly RecordedSlot[];
  readonly flags: readonly RecordedFlag[];
}

/** One NDJSON line for `line`. */
export const recordingLine = (line: RecordingLine): string => `${JSON.stringify(line)}\n`;

/**
 * Parses a recording.
 * @param name shown in reports and errors (the file name)
 * @throws CanaryGateError CG_RECORDING_INVALID naming the line when a line is not JSON, has an unknown kind or lacks
 *   fields, or when the first line is not the meta line
 */
export function parseRecording(name: string, text: string): Recording {
  const bad = (line: number, why: string): CanaryGateError => new CanaryGateError(ErrorCodes.RECORDING_INVALID, `${name}:${line}: ${why}`);
  let meta: RecordingMeta | null = null;
  const slots: RecordedSlot[] = [];
  const flags: RecordedFlag[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    let value: Partial<RecordingLine> & Record<string, unknown>;
    try {
      value = JSON.parse(raw) as typeof value;
    } catch {
      throw bad(i + 1, 'not JSON');
    }
    if (i === 0 || meta === null) {
      if (
        value.kind !== 'meta' ||
        typeof value.slotMs !== 'number' ||
        typeof value.baseline !== 'string' ||
        typeof value.canary !== 'string'
      ) {
        throw bad(i + 1, 'the first line must be {"kind":"meta", "service", "baseline", "canary", "slotMs", "slots"}');
      }
      meta = value as RecordingMeta;
    } else if (value.kind === 'slot') {
      if (
        typeof value.version !== 'string' ||
        !Number.isInteger(value.slot) ||
        typeof value.pod !== 'string' ||
        typeof value.payload !== 'string'
      ) {
        throw bad(i + 1, 'a slot line needs version, slot (integer), pod and payload');
      }
      slots.push(value as RecordedSlot);
    } else if (value.kind === 'flag') {
      if (!Number.isInteger(value.slot) || !(value.percent === null || typeof value.percent === 'number'))
        throw bad(i + 1, 'a flag line needs slot and percent (number or null)');
      flags.push(value as RecordedFlag);
    } else {
      throw bad(i + 1, `unknown kind ${JSON.stringify(value.kind)}`);
    }
  });
  if (meta === null) throw bad(1, 'empty recording');
  return { name, meta, slots, flags };
}

/** Reads and parses a recording file. @throws CanaryGateError CG_RECORDING_INVALID (see parseRecording) or CG_CONFIG_UNREADABLE */
export async function readRecording(path: string): Promise<Recording> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CanaryGateError(ErrorCodes.CONFIG_UNREADABLE, `cannot read recording ${path}: ${(err as Error).message}`);
  }
  return parseRecording(path, text);
}
