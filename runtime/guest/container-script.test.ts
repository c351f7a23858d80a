import { execFileSync, spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { GuestContainerSpec } from '../protocol/messages.ts';
import {
  TERMINAL_STATUS_FD,
  containerExecScript,
  containerStartScript,
  terminalRelay,
} from './container-script.ts';
import { shellWords } from './shell-quote.ts';

const spec: GuestContainerSpec = {
  id: 'web',
  rootfs: 'containers/web/rootfs',
  process: {
    args: ['sh', '-c', `echo "it's $HOME" ; true`],
    env: ['HOME=/root', `QUOTE=a'b`],
    cwd: '/srv',
    user: { uid: 1000, gid: 100 },
  },
  mounts: [
    { source: 'containers/web/volumes/0', destination: '/data', readOnly: true },
    { source: 'containers/web/volumes/1', destination: '/cache', readOnly: false },
  ],
  resources: {},
};

describe('container scripts', () => {
  it('quotes arguments so the shell passes them through unchanged', () => {
    const words = ['a b', `it's`, '$HOME', '"', '\\', ''];
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${shellWords(words)}`], {
      encoding: 'utf8',
    });
    expect(out).toBe(`${words.join('\n')}\n`);
  });

  it('joins the cgroup first, then new namespaces, mounts, and drops to the user last', () => {
    const script = containerStartScript(spec, {
      cgroupDir: '/sys/fs/cgroup/ctr-web',
      rootfs: '/run/share/containers/web/rootfs',
      shareRoot: '/run/share',
    });
    const [first, second] = script.split('\n');
    expect(first).toBe(`echo $$ > '/sys/fs/cgroup/ctr-web/cgroup.procs'`);
    const prefix = 'exec unshare -m -u -i -p -f --propagation private /bin/sh -c ';
    expect(second?.startsWith(prefix)).toBe(true);
    // What runs inside the new namespaces, unquoted by a real shell.
    const inner = execFileSync(
      '/bin/sh',
      ['-c', `printf '%s' ${script.slice(script.indexOf(prefix) + prefix.length)}`],
      {
        encoding: 'utf8',
      },
    );
    expect(inner).toContain(`mount --bind '/run/share/containers/web/volumes/0' "$root"'/data'`);
    expect(inner).toContain(`mount -o remount,bind,ro "$root"'/data'`);
    expect(inner).not.toContain(`remount,bind,ro "$root"'/cache'`);
    expect(inner).toMatch(/nsenter -r"\$root" -w"\$root"'\/srv' -S 1000 -G 100 -- 'sh' '-c'/);
    expect(inner.indexOf('mount -t proc')).toBeLessThan(inner.indexOf('nsenter'));
  });

  it('execs inside the namespaces and root of the container PID 1', () => {
    const script = containerExecScript(spec.process, {
      cgroupDir: '/sys/fs/cgroup/ctr-web',
      initPid: 77,
    });
    expect(script).toContain(`nsenter -t 77 -m -u -i -p -r -w'/proc/77/root/srv'`);
  });
});

describe('terminal relay', () => {
  it('runs a multi-line command on a pty unchanged and reports its exit status', async () => {
    const relay = terminalRelay(
      [],
      `echo 'a  b'\nif tty >/dev/null; then echo on-a-tty; fi\n(exit 7)`,
      {
        socat: '/usr/bin/socat',
        socatLibraries: '/nonexistent',
      },
    );
    const child = spawn('/bin/sh', ['-c', relay], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    let output = '';
    let status = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdio[TERMINAL_STATUS_FD]?.on('data', (chunk: Buffer) => {
      status += chunk.toString();
      child.stdin.end();
    });
    await new Promise((resolve) => child.on('close', resolve));
    expect({ output, status }).toEqual({ output: 'a  b\r\non-a-tty\r\n', status: '7\n' });
  });
});
