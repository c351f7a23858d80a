import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, plainGet } from './hub-process.ts';

/** Where Debian's `nginx` package puts the binary (it is not on a non-root PATH). */
const NGINX_CANDIDATES = ['nginx', '/usr/sbin/nginx'];

export function findNginx(): string | undefined {
  return NGINX_CANDIDATES.find((bin) => spawnSync(bin, ['-v'], { stdio: 'ignore' }).status === 0);
}

/**
 * The reference proxy: one nginx worker in the foreground, a plain reverse
 * proxy to `upstream` with keep-alive connections on both sides and no
 * buffering (it streams, as EdgeHub does), all files in `dir`.
 */
function nginxConfig(dir: string, port: number, upstream: URL): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  upstream apiserver { server ${upstream.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://apiserver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`;
}

export class NginxProxy {
  readonly url: string;
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, port: number, dir: string) {
    this.#child = child;
    this.url = `http://127.0.0.1:${port}`;
    this.#dir = dir;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Starts nginx in front of `upstream`; resolves once it answers. */
  static async start(bin: string, dir: string, upstream: string): Promise<NginxProxy> {
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConfig(dir, port, new URL(upstream)));
    const child = spawn(bin, ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], {
      stdio: 'ignore',
    });
    const proxy = new NginxProxy(child, port, dir);
    const deadline = performance.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`nginx exited with ${child.exitCode}: ${proxy.#errors()}`);
      try {
        await plainGet(`${proxy.url}/healthz`);
        return proxy;
      } catch (err) {
        if (performance.now() > deadline) {
          await proxy.stop();
          throw new Error(
            `nginx did not answer on ${proxy.url}: ${String(err)}; ${proxy.#errors()}`,
            { cause: err },
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  #errors(): string {
    try {
      return readFileSync(join(this.#dir, 'error.log'), 'utf8')
        .trim()
        .split('\n')
        .slice(-2)
        .join(' | ');
    } catch {
      return '(no error log)';
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGTERM');
    await this.#exited;
  }
}
