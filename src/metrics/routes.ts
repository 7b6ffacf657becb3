/**
 * `http.route` for http.server.request.duration: the first configured route template (URLPattern pathname syntax,
 * `/users/:id`) that matches a request's path. Only configured templates become label values, so a raw path never
 * does (OpenTelemetry HTTP semantic conventions: http.route is the template, low cardinality, omitted when unknown).
 */

/** Maps a request target (`/users/42?x=1`) to its route template, or `''` when none matches. */
export type RouteMatcher = (target: string) => string;

/**
 * @param templates config `proxy.routes`, tried in order; validated by the config schema
 * @throws TypeError from URLPattern when a template does not parse (the schema rejects those first)
 */
export function createRouteMatcher(templates: readonly string[]): RouteMatcher {
  if (templates.length === 0) return () => '';
  const patterns = templates.map((template) => ({ template, pattern: new URLPattern({ pathname: template }) }));
  return (target) => {
    const q = target.indexOf('?');
    const pathname = q === -1 ? target : target.slice(0, q);
    for (const { template, pattern } of patterns) {
      if (pattern.test({ pathname })) return template;
    }
    return '';
  };
}
