import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A throw-away PKI made with the `openssl` CLI at runtime (no key is ever
 * committed): a CA, a serving certificate for 127.0.0.1/localhost, and client
 * certificates whose CN is the user and O the groups, as kube-apiserver's
 * x509 authenticator reads them.
 */

export interface CertificatePair {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface ClientIdentity {
  user: string;
  groups: string[];
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0] ?? ''} failed: ${e.stderr?.trim() ?? e.message}`, {
      cause: err,
    });
  }
}

/** Escapes a value for an openssl `-subj` component. */
function subjectValue(value: string): string {
  return value.replace(/[\\/,+=<>#;"]/g, (c) => `\\${c}`);
}

export class CertificateAuthority {
  readonly dir: string;
  readonly ca: CertificatePair;
  #serial = 1;

  private constructor(dir: string, ca: CertificatePair) {
    this.dir = dir;
    this.ca = ca;
  }

  /** Creates the CA in a fresh temporary directory. */
  static async create(): Promise<CertificateAuthority> {
    const dir = await mkdtemp(join(tmpdir(), 'edgebox-fake-apiserver-pki-'));
    await openssl(
      [
        'req',
        '-x509',
        '-new',
        '-nodes',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '2',
        '-subj',
        '/CN=edgebox-fake-apiserver-ca',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      ],
      dir,
    );
    return new CertificateAuthority(dir, await readPair(dir, 'ca'));
  }

  /** A serving certificate valid for the given IPs and DNS names. */
  serving(ips: string[], dnsNames: string[]): Promise<CertificatePair> {
    const san = [...ips.map((ip) => `IP:${ip}`), ...dnsNames.map((d) => `DNS:${d}`)].join(',');
    return this.#issue('serving', '/CN=kube-apiserver', [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san}`,
    ]);
  }

  /** A client certificate: CN = user name, one O per group. */
  client(identity: ClientIdentity): Promise<CertificatePair> {
    const subject =
      identity.groups.map((g) => `/O=${subjectValue(g)}`).join('') +
      `/CN=${subjectValue(identity.user)}`;
    return this.#issue(`client-${this.#serial}`, subject, [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=clientAuth',
    ]);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  async #issue(name: string, subject: string, extensions: string[]): Promise<CertificatePair> {
    const serial = this.#serial++;
    const extFile = `${name}.ext`;
    await writeFile(join(this.dir, extFile), `${extensions.join('\n')}\n`);
    await openssl(
      [
        'req',
        '-new',
        '-nodes',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        subject,
      ],
      this.dir,
    );
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        String(serial + 1000),
        '-days',
        '2',
        '-out',
        `${name}.crt`,
        '-extfile',
        extFile,
      ],
      this.dir,
    );
    return readPair(this.dir, name);
  }
}

async function readPair(dir: string, name: string): Promise<CertificatePair> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const [certPem, keyPem] = await Promise.all([
    readFile(certPath, 'utf8'),
    readFile(keyPath, 'utf8'),
  ]);
  return { certPath, keyPath, certPem, keyPem };
}
