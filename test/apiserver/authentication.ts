import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * Who is asking: kube-apiserver's x509 authenticator (CN = user, O = groups,
 * verified against the cluster CA) and its token authenticator (bearer
 * tokens: static ones the test adds, and service-account tokens the double
 * issued through serviceaccounts/token). On the plain-HTTP listener nothing
 * is required, as on the old insecure port; a known token still names the user.
 */

export interface UserInfo {
  user: string;
  groups: string[];
}

/** The identity of requests on the plain-HTTP listener that carry no known token. */
export const UNSECURED_USER: UserInfo = {
  user: 'system:unsecured',
  groups: ['system:masters', 'system:authenticated'],
};

interface TokenEntry extends UserInfo {
  expiresAtMs: number | undefined;
}

export type AuthenticationResult = { ok: true; identity: UserInfo } | { ok: false; reason: string };

export class Authenticator {
  readonly #tokens = new Map<string, TokenEntry>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  addToken(token: string, identity: UserInfo, expiresAtMs?: number): void {
    if (token === '' || /\s/.test(token)) {
      throw new Error('a bearer token must be non-empty and contain no whitespace');
    }
    this.#tokens.set(token, { ...identity, expiresAtMs });
  }

  removeToken(token: string): void {
    this.#tokens.delete(token);
  }

  /**
   * kube-apiserver's union authenticator tries the x509 client certificate
   * before bearer tokens: a request carrying both is the certificate's user.
   */
  authenticate(req: IncomingMessage, secure: boolean): AuthenticationResult {
    if (secure) {
      const fromCertificate = this.#certificateIdentity(req.socket as TLSSocket);
      if (fromCertificate !== undefined) return { ok: true, identity: fromCertificate };
    }
    const header = req.headers.authorization;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const entry = match?.[1] === undefined ? undefined : this.#tokens.get(match[1]);
      if (
        entry !== undefined &&
        (entry.expiresAtMs === undefined || entry.expiresAtMs > this.#now())
      ) {
        return { ok: true, identity: { user: entry.user, groups: entry.groups } };
      }
      if (secure) return { ok: false, reason: 'invalid bearer token' };
    }
    if (!secure) return { ok: true, identity: UNSECURED_USER };
    return { ok: false, reason: 'no client certificate or bearer token' };
  }

  #certificateIdentity(socket: TLSSocket): UserInfo | undefined {
    if (!socket.authorized) return undefined;
    const subject = socket.getPeerCertificate().subject as unknown as
      Record<string, string | string[] | undefined> | undefined;
    const cn = subject?.CN;
    const o = subject?.O;
    const user = Array.isArray(cn) ? cn[0] : cn;
    if (user === undefined || user === '') return undefined;
    const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
    return { user, groups: [...groups, 'system:authenticated'] };
  }
}
