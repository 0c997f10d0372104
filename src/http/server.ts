/**
 * The HTTP listener of the daemon (default 127.0.0.1:9641, on with `prometheus`): /metrics,
 * /livez, /readyz, and the token-protected operator endpoints other modules register. It never
 * shares a port with STUN/TURN, keeps its parsing to what node:http does, limits request bodies,
 * and answers unknown paths with 404.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BindError } from '../errors.js';
import type { Logger } from '../log.js';

export interface HttpReply {
  readonly status: number;
  readonly contentType?: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export type HttpHandler = (req: IncomingMessage, url: URL, body: string) => Promise<HttpReply> | HttpReply;

interface Route {
  readonly method: string;
  readonly path: string;
  readonly protected: boolean;
  readonly handler: HttpHandler;
}

const MAX_BODY_BYTES = 64 * 1024;

export const json = (status: number, value: unknown): HttpReply => ({
  status,
  contentType: 'application/json; charset=utf-8',
  body: JSON.stringify(value, null, 2) + '\n',
});

export class HttpApi {
  private readonly routes: Route[] = [];
  private server: Server | undefined;
  private readonly log: Logger;
  /** Bearer token for protected routes; undefined disables them (403). */
  private token: Buffer | undefined;

  constructor(log: Logger, token: string | undefined) {
    this.log = log.child({ listener: 'http' });
    this.token = token === undefined ? undefined : Buffer.from(token, 'utf8');
  }

  setToken(token: string | undefined): void {
    this.token = token === undefined ? undefined : Buffer.from(token, 'utf8');
  }

  route(method: string, path: string, handler: HttpHandler, options: { protected: boolean }): void {
    this.routes.push({ method, path, handler, protected: options.protected });
  }

  private authorized(req: IncomingMessage): boolean {
    const token = this.token;
    if (token === undefined) return false;
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) return false;
    const given = Buffer.from(header.slice(7).trim(), 'utf8');
    return given.length === token.length && timingSafeEqual(given, token);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const sameResource = this.routes.filter((r) => r.path === url.pathname);
    const route = sameResource.find((r) => r.method === req.method);
    if (route === undefined) {
      reply(
        res,
        sameResource.length > 0
          ? { status: 405, body: 'method not allowed\n' }
          : { status: 404, body: 'not found\n' },
      );
      req.resume();
      return;
    }
    if (route.protected && !this.authorized(req)) {
      reply(res, {
        status: this.token === undefined ? 403 : 401,
        body: this.token === undefined ? 'disabled: no api-token configured\n' : 'unauthorized\n',
        headers: this.token === undefined ? {} : { 'www-authenticate': 'Bearer' },
      });
      req.resume();
      return;
    }
    let body = '';
    if (req.method === 'POST' || req.method === 'PUT') {
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          reply(res, { status: 413, body: 'request body too large\n' });
          req.destroy();
          return;
        }
        chunks.push(chunk);
      }
      body = Buffer.concat(chunks).toString('utf8');
    }
    reply(res, await route.handler(req, url, body));
  }

  async listen(address: string, port: number): Promise<void> {
    const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      this.dispatch(req, res).catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'http handler failed');
        if (!res.headersSent) reply(res, { status: 500, body: 'internal error\n' });
        else res.destroy();
      });
    });
    server.maxHeadersCount = 50;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(new BindError(`cannot listen on HTTP ${address}:${port}: ${err.message}`, { cause: err }));
      server.once('error', onError);
      server.listen({ host: address, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'http listener error'));
    this.server = server;
  }

  address(): { address: string; port: number } {
    const a = this.server?.address();
    if (a === null || a === undefined || typeof a === 'string') throw new Error('not listening');
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

function reply(res: ServerResponse, r: HttpReply): void {
  res.writeHead(r.status, {
    'content-type': r.contentType ?? 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...r.headers,
  });
  res.end(r.body);
}
