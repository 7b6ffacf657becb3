import { describe, expect, it } from 'vitest';
import type { CanaryGateError } from '../../src/core/errors.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createRouteMatcher } from '../../src/metrics/routes.ts';

describe('http.route matcher', () => {
  it('returns the first matching template, ignoring the query, and nothing for unmatched paths', () => {
    const routeOf = createRouteMatcher(['/users/:id', '/users/:id/orders/:order', '/static/*']);
    expect(routeOf('/users/42')).toBe('/users/:id');
    expect(routeOf('/users/42?expand=1')).toBe('/users/:id');
    expect(routeOf('/users/42/orders/7')).toBe('/users/:id/orders/:order');
    expect(routeOf('/static/css/site.css')).toBe('/static/*');
    expect(routeOf('/admin')).toBe('');
    expect(routeOf('/users')).toBe('');
  });

  it('reports no route at all when none is configured', () => {
    expect(createRouteMatcher([])('/users/42')).toBe('');
  });

  it('refuses a template that is not a URLPattern pathname, naming the field', () => {
    const details = (routes: string): string[] => {
      try {
        loadConfig({ env: { CANARY_GATE_PROXY_ROUTES: routes } });
      } catch (err) {
        return (err as CanaryGateError).details as string[];
      }
      throw new Error(`${routes} was accepted`);
    };
    expect(details('/users/:id,users')).toEqual([expect.stringMatching(/^proxy\.routes\.1: must start with \//)]);
    expect(details('/users/(')).toEqual([expect.stringMatching(/^proxy\.routes\.0: must be a URLPattern pathname/)]);
    expect(loadConfig({ env: { CANARY_GATE_PROXY_ROUTES: '/a/:x, /b/*' } }).proxy.routes).toEqual(['/a/:x', '/b/*']);
  });
});
