/** readRedisTarget: the URL conventions of the three Redis modes, read into hosts, credentials, database and master name. */
import { expect, it } from 'vitest';
import { hashTagOf, readRedisTarget, type RedisTargetFields } from '../../src/config/redis-target.ts';

const fields = (over: Partial<RedisTargetFields>): RedisTargetFields => ({
  mode: 'standalone',
  url: 'redis://127.0.0.1:6379',
  nodes: [],
  masterName: '',
  ...over,
});

it.each<[string, Partial<RedisTargetFields>, object]>([
  ['one server', {}, { mode: 'standalone', nodes: [{ host: '127.0.0.1', port: 6379 }], db: 0, tls: false }],
  ['a database, user and password', { url: 'rediss://gate:p%40ss@redis:6380/3' }, { username: 'gate', password: 'p@ss', db: 3, tls: true }],
  [
    'a password alone',
    { url: 'redis://:secret@redis' },
    { username: undefined, password: 'secret', nodes: [{ host: 'redis', port: 6379 }] },
  ],
  ['an IPv6 host', { url: 'redis://[::1]:7000' }, { nodes: [{ host: '::1', port: 7000 }] }],
  [
    'Cluster seed nodes',
    { mode: 'cluster', url: 'redis://a:7000,b:7001,c' },
    {
      mode: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
        { host: 'c', port: 6379 },
      ],
    },
  ],
  [
    'Cluster nodes from redis.nodes',
    { mode: 'cluster', nodes: ['x:1', 'y:2'] },
    {
      nodes: [
        { host: 'x', port: 1 },
        { host: 'y', port: 2 },
      ],
    },
  ],
  [
    'Sentinels with the master name and database in the path',
    { url: 'redis+sentinel://gate:pw@s1,s2:26380/mymaster/2' },
    {
      mode: 'sentinel',
      masterName: 'mymaster',
      db: 2,
      password: 'pw',
      nodes: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
    },
  ],
  [
    'a master name from redis.masterName',
    { mode: 'sentinel', url: 'redis://s1:26379', masterName: 'm' },
    { mode: 'sentinel', masterName: 'm' },
  ],
  ['TLS to the data nodes of a Sentinel setup', { url: 'rediss+sentinel://s1/m' }, { mode: 'sentinel', tls: true }],
])('reads %s', (_name, over, expected) => {
  expect(readRedisTarget(fields(over))).toMatchObject(expected);
});

it.each<[string, Partial<RedisTargetFields>, string]>([
  ['a port out of range', { url: 'redis://a:70000' }, 'redis.url: "a:70000" is not a host:port'],
  ['no host', { url: 'redis://' }, 'redis.url: names no host'],
  ['a database that is not a number', { url: 'redis://a/x' }, 'redis.url: database "x" must be a number such as 0'],
  ['bad percent-encoding', { url: 'redis://u:%zz@a' }, 'redis.url: has a part that is not valid percent-encoding'],
])('refuses %s', (_name, over, problem) => {
  const result = readRedisTarget(fields(over));
  expect(Array.isArray(result) ? result.map((p) => `${p.path}: ${p.reason}`) : result).toEqual([problem]);
});

it.each([
  ['feature:{checkout}:v2_traffic_percentage', 'checkout'],
  ['feature:v2_traffic_percentage', 'feature:v2_traffic_percentage'],
  ['a{}b{c}', 'a{}b{c}'],
  ['{a}{b}', 'a'],
])('the hash tag of %s is %s', (key, tag) => {
  expect(hashTagOf(key)).toBe(tag);
});
