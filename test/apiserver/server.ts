import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  parseRequestInfo,
  RequestInfoError,
  requestInfoErrorStatus,
} from '../../src/kube/request-info.ts';
import { internalError, unauthorized, type KubeStatus } from '../../src/kube/status.ts';
import { Authenticator, type UserInfo } from './authentication.ts';
import { CertificateAuthority, type CertificatePair, type ClientIdentity } from './certificates.ts';
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  SERVER_VERSION,
} from './discovery.ts';
import { FaultInjector, type FaultRequest } from './faults.ts';
import { writeJson, writeJsonText, writePlain, writeStatusObject } from './http-io.ts';
import { writeKubeconfigSync } from './kubeconfig.ts';
import { openApiV3Document, openApiV3Root } from './openapi.ts';
import { StatusError } from './object-meta.ts';
import { ObjectRegistry } from './object-registry.ts';
import { handleResourceRequest } from './resource-handler.ts';
import {
  BUILTIN_RESOURCES,
  ResourceTable,
  WIDGET_RESOURCE,
  type ResourceSpec,
  type ResourceType,
} from './resource-types.ts';
import { RequestLog, type RequestRecord } from './request-log.ts';
import { VersionedStorage } from './versioned-storage.ts';

/**
 * A kube-apiserver double that speaks the real wire protocol over HTTP or
 * HTTPS (client certificates and bearer tokens). See README.md for what it
 * models and what it does not.
 */

export interface FakeApiServerOptions {
  /** HTTPS with client-certificate and bearer-token authentication (default false: plain HTTP). */
  tls?: boolean;
  /** Events kept for watches and consistent reads; older resourceVersions get 410 (default 10000). */
  historyLimit?: number;
  /** How often watches with allowWatchBookmarks get a BOOKMARK (default 60 s, as the apiserver). */
  bookmarkIntervalMs?: number;
  /** Lifetime of a watch without timeoutSeconds (default: random 30-60 min, as the apiserver). */
  watchTimeoutMs?: number;
  /** Extra resource types to serve (custom resources); the Widget CRD is always served. */
  resources?: ResourceSpec[];
  /** Emulate the controllers that fill namespaces (default ServiceAccount, kube-root-ca.crt). Default true. */
  namespaceControllers?: boolean;
  /** Clock for timestamps and token expiry (default Date.now). */
  now?: () => number;
  /** Port to listen on (default 0: a free port, kept across restart()). */
  port?: number;
}

export interface KubeconfigOptions {
  /** Default: 'certificate' on https, 'none' on http. */
  auth?: 'certificate' | 'token' | 'none';
  /** A client certificate from issueClientCertificate() (default: the admin's). */
  certificate?: CertificatePair;
  /** Bearer token (default: the admin token). */
  token?: string;
  namespace?: string;
  /** File name inside dir (default `kubeconfig-<auth>.yaml`). */
  fileName?: string;
}

export const ADMIN_IDENTITY: UserInfo = { user: 'kubernetes-admin', groups: ['system:masters'] };

const HOST = '127.0.0.1';
const MIN_REQUEST_TIMEOUT_MS = 1800_000;

export class FakeApiServer {
  /** Objects, without HTTP: create/get/list/update/patch/delete with the apiserver's semantics. */
  readonly store: ObjectRegistry;
  readonly faults = new FaultInjector();
  readonly requestLog = new RequestLog();
  readonly resources: ResourceTable;
  readonly authenticator: Authenticator;
  /** A bearer token for the admin (system:masters), valid on https. */
  readonly adminToken: string;
  readonly #tls: boolean;
  readonly #now: () => number;
  readonly #bookmarkIntervalMs: number;
  readonly #watchTimeoutMs: number | undefined;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port: number;
  #pki: CertificateAuthority | undefined;
  #serving: CertificatePair | undefined;
  #adminCert: CertificatePair | undefined;
  #bootstrapped = false;

  constructor(options: FakeApiServerOptions = {}) {
    this.#tls = options.tls ?? false;
    this.#now = options.now ?? Date.now;
    this.#bookmarkIntervalMs = options.bookmarkIntervalMs ?? 60_000;
    this.#watchTimeoutMs = options.watchTimeoutMs;
    this.#port = options.port ?? 0;
    this.resources = new ResourceTable([
      ...BUILTIN_RESOURCES,
      WIDGET_RESOURCE,
      ...(options.resources ?? []),
    ]);
    this.authenticator = new Authenticator(this.#now);
    this.adminToken = randomBytes(24).toString('base64url');
    this.authenticator.addToken(this.adminToken, ADMIN_IDENTITY);
    const storage = new VersionedStorage({ historyLimit: options.historyLimit ?? 10_000 });
    this.store = new ObjectRegistry(this.resources, storage, {
      now: this.#now,
      namespaceControllers: options.namespaceControllers ?? true,
      onTokenIssued: (t) =>
        this.authenticator.addToken(t.token, { user: t.user, groups: t.groups }, t.expiresAtMs),
    });
    this.store.bootstrap();
  }

  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`; valid after start(). */
  get url(): string {
    if (this.#port === 0) throw new Error('FakeApiServer: url is known only after start()');
    return `${this.#tls ? 'https' : 'http'}://${HOST}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get tls(): boolean {
    return this.#tls;
  }

  get listening(): boolean {
    return this.#server?.listening ?? false;
  }

  /** PEM of the cluster CA (https only; after start()). */
  get caPem(): string | undefined {
    return this.#pki?.ca.certPem;
  }

  /** The admin's client certificate (CN kubernetes-admin, O system:masters); https, after start(). */
  get adminCertificate(): CertificatePair | undefined {
    return this.#adminCert;
  }

  /** Every request received, oldest first (also see requestLog.waitFor). */
  get requests(): readonly RequestRecord[] {
    return this.requestLog.records;
  }

  /** Serves one more resource type (a CRD being established); visible in discovery at once. */
  registerResource(spec: ResourceSpec): ResourceType {
    return this.resources.register(spec);
  }

  /** Listens on 127.0.0.1 (a free port the first time, the same port afterwards). */
  async start(): Promise<void> {
    if (this.#server?.listening === true) throw new Error('FakeApiServer: already started');
    if (this.#tls && this.#pki === undefined) {
      this.#pki = await CertificateAuthority.create();
      this.#serving = await this.#pki.serving(
        [HOST, '::1'],
        ['localhost', 'kubernetes', 'kubernetes.default.svc'],
      );
      this.#adminCert = await this.#pki.client(ADMIN_IDENTITY);
      this.store.publishRootCA(this.#pki.ca.certPem);
    }
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    };
    const server =
      this.#tls && this.#serving !== undefined && this.#pki !== undefined
        ? createHttpsServer(
            {
              key: this.#serving.keyPem,
              cert: this.#serving.certPem,
              ca: this.#pki.ca.certPem,
              requestCert: true,
              rejectUnauthorized: false,
            },
            handler,
          )
        : createHttpServer(handler);
    // Go clients keep idle connections ~90 s; a shorter server timeout races their reuse.
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 130_000;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    const address = server.address();
    if (address !== null && typeof address === 'object') this.#port = address.port;
    if (!this.#bootstrapped) {
      this.#bootstrapped = true;
      this.#createKubernetesService();
    }
  }

  /** Stops listening and destroys every open connection (watches end without a clean close). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await closed;
  }

  /** Listens again on the same port with the same data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** stop() and removes the temporary certificate directory. */
  async close(): Promise<void> {
    await this.stop();
    await this.#pki?.remove();
  }

  /** Issues a client certificate for another identity (CN = user, O = groups); https only. */
  async issueClientCertificate(identity: ClientIdentity): Promise<CertificatePair> {
    if (this.#pki === undefined)
      throw new Error('FakeApiServer: client certificates need tls: true and start()');
    return this.#pki.client(identity);
  }

  /** Accepts `token` as a bearer token for `identity`. */
  addToken(token: string, identity: UserInfo): void {
    this.authenticator.addToken(token, identity);
  }

  /**
   * Writes a kubeconfig for this server into `dir` and returns its path:
   * on https with the CA and the admin's client certificate (or a token),
   * on http with no credentials.
   */
  kubeconfigPath(dir: string, options: KubeconfigOptions = {}): string {
    const auth = options.auth ?? (this.#tls ? 'certificate' : 'none');
    const path = join(dir, options.fileName ?? `kubeconfig-${auth}.yaml`);
    const cert = options.certificate ?? this.#adminCert;
    if (auth === 'certificate' && cert === undefined) {
      throw new Error('FakeApiServer: certificate auth needs tls: true and start() first');
    }
    return writeKubeconfigSync(path, {
      server: this.url,
      userName:
        auth === 'certificate' ? 'cert-user' : auth === 'token' ? 'token-user' : 'anonymous',
      ...(this.#pki === undefined ? {} : { caPem: this.#pki.ca.certPem }),
      ...(auth === 'certificate' && cert !== undefined
        ? { clientCertPem: cert.certPem, clientKeyPem: cert.keyPem }
        : {}),
      ...(auth === 'token' ? { token: options.token ?? this.adminToken } : {}),
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    let parsed: URL;
    try {
      parsed = new URL(rawUrl, 'http://fake.invalid');
    } catch {
      parsed = new URL('http://fake.invalid/');
    }
    const record = this.requestLog.begin({
      method,
      url: rawUrl,
      path: parsed.pathname,
      query: parsed.searchParams,
      userAgent: req.headers['user-agent'] ?? '',
      startedAt: this.#now(),
    });
    const answered = (status: number): void => this.requestLog.complete(record, status);
    res.on('finish', () => answered(res.statusCode));
    res.on('close', () => answered(res.headersSent ? res.statusCode : 0));
    res.setHeader('Audit-Id', randomUUID());

    if (this.faults.latencyMs > 0) await delay(this.faults.latencyMs);

    const auth = this.authenticator.authenticate(req, this.#tls);
    if (!auth.ok) {
      writeStatusObject(res, unauthorized());
      return;
    }
    record.user = auth.identity.user;

    const info = parseRequestInfo(method, rawUrl);
    if (!(info instanceof RequestInfoError)) record.verb = info.verb;
    const faultRequest: FaultRequest = {
      method,
      url: rawUrl,
      path: parsed.pathname,
      query: parsed.searchParams,
      watch: !(info instanceof RequestInfoError) && info.verb === 'watch',
      userAgent: record.userAgent,
    };
    const fault = this.faults.take(faultRequest);
    if (fault?.kind === 'status') {
      writeStatusObject(res, fault.status);
      return;
    }
    if (fault?.kind === 'invalid-json') {
      writeJsonText(res, 200, '{"kind":"Status","apiVersion":"v1",<<not json>>');
      return;
    }
    if (info instanceof RequestInfoError) {
      writeStatusObject(res, requestInfoErrorStatus(info));
      return;
    }
    if (this.#serveNonResource(method, parsed.pathname, parsed.searchParams, res)) return;
    if (!info.isResourceRequest) {
      writePlain(res, 404, '404 page not found\n');
      return;
    }
    await handleResourceRequest(info, req, res, parsed.searchParams, {
      registry: this.store,
      faults: this.faults,
      now: this.#now,
      bookmarkIntervalMs: this.#bookmarkIntervalMs,
      watchTimeoutMs: () =>
        this.#watchTimeoutMs ?? MIN_REQUEST_TIMEOUT_MS + randomInt(MIN_REQUEST_TIMEOUT_MS),
      truncate: fault?.kind === 'truncate',
      faultRequest,
      answered,
    });
  }

  /** Health, version and discovery; true when the path was one of them. */
  #serveNonResource(
    method: string,
    path: string,
    query: URLSearchParams,
    res: ServerResponse,
  ): boolean {
    if (method !== 'GET' && method !== 'HEAD') return false;
    const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    const health = /^\/(healthz|livez|readyz)(\/.*)?$/.exec(trimmed);
    if (health !== null) {
      const verbose = query.has('verbose');
      writePlain(
        res,
        200,
        verbose
          ? `[+]ping ok\n[+]log ok\n[+]etcd ok\n${health[1] ?? 'healthz'} check passed\n`
          : 'ok',
      );
      return true;
    }
    if (trimmed === '/version') {
      writeJson(res, 200, SERVER_VERSION);
      return true;
    }
    if (trimmed === '/openapi/v3') {
      writeJson(res, 200, openApiV3Root(this.resources));
      return true;
    }
    const openapi = /^\/openapi\/v3\/(?:api\/([^/]+)|apis\/([^/]+)\/([^/]+))$/.exec(trimmed);
    if (openapi !== null) {
      const doc =
        openapi[1] !== undefined
          ? openApiV3Document(this.resources, '', openapi[1])
          : openApiV3Document(this.resources, openapi[2] ?? '', openapi[3] ?? '');
      if (doc === undefined) writePlain(res, 404, '404 page not found\n');
      else writeJson(res, 200, doc);
      return true;
    }
    if (trimmed === '/api') {
      writeJson(res, 200, apiVersions(`${HOST}:${this.#port}`));
      return true;
    }
    if (trimmed === '/apis') {
      writeJson(res, 200, apiGroupList(this.resources));
      return true;
    }
    const parts = trimmed.split('/').filter((p) => p !== '');
    let doc: unknown;
    if (parts.length === 2 && parts[0] === 'api')
      doc = apiResourceList(this.resources, '', parts[1] ?? '');
    else if (parts.length === 2 && parts[0] === 'apis')
      doc = apiGroup(this.resources, parts[1] ?? '');
    else if (parts.length === 3 && parts[0] === 'apis') {
      doc = apiResourceList(this.resources, parts[1] ?? '', parts[2] ?? '');
    } else return false;
    if (doc === undefined) {
      writePlain(res, 404, '404 page not found\n');
      return true;
    }
    writeJson(res, 200, doc);
    return true;
  }

  #fail(res: ServerResponse, err: unknown): void {
    const status: KubeStatus =
      err instanceof StatusError
        ? err.status
        : internalError(err instanceof Error ? err.message : String(err));
    if (res.headersSent) {
      res.destroy();
      return;
    }
    writeStatusObject(res, status);
  }

  /** The `default/kubernetes` Service and Endpoints kube-apiserver maintains for itself. */
  #createKubernetesService(): void {
    const port = this.#port;
    if (this.store.get('services', 'kubernetes', 'default') === undefined) {
      this.store.create('services', {
        metadata: {
          name: 'kubernetes',
          namespace: 'default',
          labels: { component: 'apiserver', provider: 'kubernetes' },
        },
        spec: {
          clusterIP: '10.96.0.1',
          ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: port }],
        },
      });
    }
    if (this.store.get('endpoints', 'kubernetes', 'default') === undefined) {
      this.store.create('endpoints', {
        metadata: {
          name: 'kubernetes',
          namespace: 'default',
          labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' },
        },
        subsets: [{ addresses: [{ ip: HOST }], ports: [{ name: 'https', port, protocol: 'TCP' }] }],
      });
    }
  }
}
