/** The unprotected routes of the HTTP listener: /metrics, /livez and /readyz. */
import type { Metrics } from '../metrics/registry.js';
import type { HttpApi } from './server.js';

export function registerHealthRoutes(
  http: HttpApi,
  metrics: Metrics,
  state: { readonly ready: boolean; readonly draining: boolean },
  /** More reasons not to be ready (fleet mode: over capacity, Redis unreachable), or undefined. */
  notReady: () => string | undefined = () => undefined,
): void {
  http.route(
    'GET',
    '/metrics',
    async () => {
      const { contentType, body } = await metrics.render();
      return { status: 200, contentType, body };
    },
    { protected: false },
  );
  http.route('GET', '/livez', () => ({ status: 200, body: 'ok\n' }), { protected: false });
  http.route(
    'GET',
    '/readyz',
    () => {
      if (!state.ready || state.draining)
        return { status: 503, body: state.draining ? 'draining\n' : 'starting\n' };
      const why = notReady();
      return why === undefined ? { status: 200, body: 'ready\n' } : { status: 503, body: `${why}\n` };
    },
    { protected: false },
  );
}
