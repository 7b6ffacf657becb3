/** Outcome classification: status classes and codes, upstream error codes, which outcomes are errors. */
import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  classifyUpstreamError,
  createStatusClassifier,
  errorCodeOf,
  isErrorOutcome,
  type RequestOutcome,
} from '../../src/proxy/outcome.ts';

/** A system error as Node's net module raises it (`connect ECONNREFUSED ...` with `code`). */
const systemError = (code: string): Error => Object.assign(new Error(`${code} (test)`), { code });

describe('createStatusClassifier', () => {
  it.each([
    { classes: ['5xx'], status: 500, error: true },
    { classes: ['5xx'], status: 599, error: true },
    { classes: ['5xx'], status: 503, error: true },
    { classes: ['5xx'], status: 499, error: false },
    { classes: ['5xx'], status: 404, error: false },
    { classes: ['5xx'], status: 429, error: false },
    { classes: ['5xx'], status: 200, error: false },
    { classes: ['4xx'], status: 400, error: true },
    { classes: ['4xx'], status: 499, error: true },
    { classes: ['4xx'], status: 500, error: false },
    { classes: ['5xx', '4xx'], status: 404, error: true },
    { classes: ['429'], status: 429, error: true },
    { classes: ['429'], status: 428, error: false },
    { classes: ['429'], status: 430, error: false },
    { classes: ['5xx', '429'], status: 429, error: true },
    { classes: ['5xx', '429'], status: 404, error: false },
    { classes: ['1xx'], status: 101, error: true },
    { classes: [], status: 500, error: false },
    // Outside the table: never an error, never a throw.
    { classes: ['5xx'], status: 600, error: false },
    { classes: ['5xx'], status: 999, error: false },
    { classes: ['5xx'], status: 0, error: false },
    { classes: ['5xx'], status: -1, error: false },
    { classes: ['5xx'], status: 500.5, error: false },
  ])('$classes: $status is an error: $error', ({ classes, status, error }) => {
    expect(createStatusClassifier(classes)(status)).toBe(error);
  });

  it.each(['5XX', '6xx', '42', '4290', 'xx', ' 5xx', ''])('refuses %j, naming it', (entry) => {
    expect(() => createStatusClassifier([entry])).toThrow(JSON.stringify(entry));
  });
});

describe('classifyUpstreamError', () => {
  it.each([
    { name: 'connect refused', err: systemError('ECONNREFUSED'), outcome: 'connect_error', status: 502, code: 'ECONNREFUSED' },
    { name: 'unknown host', err: systemError('ENOTFOUND'), outcome: 'connect_error', status: 502, code: 'ENOTFOUND' },
    { name: 'host unreachable', err: systemError('EHOSTUNREACH'), outcome: 'connect_error', status: 502, code: 'EHOSTUNREACH' },
    { name: 'connect timeout', err: new errors.ConnectTimeoutError(), outcome: 'timeout', status: 504, code: 'UND_ERR_CONNECT_TIMEOUT' },
    { name: 'headers timeout', err: new errors.HeadersTimeoutError(), outcome: 'timeout', status: 504, code: 'UND_ERR_HEADERS_TIMEOUT' },
    { name: 'body timeout', err: new errors.BodyTimeoutError(), outcome: 'timeout', status: 504, code: 'UND_ERR_BODY_TIMEOUT' },
    { name: 'socket timeout', err: systemError('ETIMEDOUT'), outcome: 'timeout', status: 504, code: 'ETIMEDOUT' },
    { name: 'other side closed', err: new errors.SocketError('other side closed'), outcome: 'reset', status: 502, code: 'UND_ERR_SOCKET' },
    { name: 'connection reset', err: systemError('ECONNRESET'), outcome: 'reset', status: 502, code: 'ECONNRESET' },
    { name: 'broken pipe', err: systemError('EPIPE'), outcome: 'reset', status: 502, code: 'EPIPE' },
    {
      name: 'short body',
      err: new errors.ResponseContentLengthMismatchError(),
      outcome: 'reset',
      status: 502,
      code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
    },
    { name: 'pool closed', err: new errors.ClientClosedError(), outcome: 'reset', status: 502, code: 'UND_ERR_CLOSED' },
    {
      name: 'code found on the cause',
      err: new Error('fetch failed', { cause: systemError('ECONNREFUSED') }),
      outcome: 'connect_error',
      status: 502,
      code: 'ECONNREFUSED',
    },
    {
      name: 'timeout under a socket error',
      err: Object.assign(new errors.SocketError('x'), { cause: systemError('ETIMEDOUT') }),
      outcome: 'timeout',
      status: 504,
      code: 'ETIMEDOUT',
    },
    {
      name: 'happy eyeballs: every address refused',
      err: new AggregateError([systemError('ECONNREFUSED'), systemError('ECONNREFUSED')]),
      outcome: 'connect_error',
      status: 502,
      code: 'ECONNREFUSED',
    },
    { name: 'no code at all', err: new Error('boom'), outcome: 'reset', status: 502, code: 'UNKNOWN' },
    { name: 'not an error', err: 'a string', outcome: 'reset', status: 502, code: 'UNKNOWN' },
    { name: 'undefined', err: undefined, outcome: 'reset', status: 502, code: 'UNKNOWN' },
  ])('$name -> $outcome $status ($code)', ({ err, outcome, status, code }) => {
    expect(classifyUpstreamError(err)).toEqual({ outcome, status, code });
  });

  it('stops after a few levels of causes (a cycle cannot hang it)', () => {
    const a: { code?: string; cause?: unknown } = { code: 'EWHATEVER' };
    a.cause = a;
    expect(errorCodeOf(a)).toBe('EWHATEVER');
  });
});

describe('isErrorOutcome', () => {
  it.each<[RequestOutcome, boolean]>([
    ['ok', false],
    ['client_abort', false],
    ['status_error', true],
    ['connect_error', true],
    ['reset', true],
    ['timeout', true],
  ])('%s counts as an error of the version: %s', (outcome, expected) => {
    expect(isErrorOutcome(outcome)).toBe(expected);
  });
});
