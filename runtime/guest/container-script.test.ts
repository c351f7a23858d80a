import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GuestContainerSpec } from '../protocol/messages.ts';
import {
  TERMINAL_STATUS_FD,
  containerExecScript,
  containerStartScript,
  containerTerminalExecScript,
  rlimitCommands,
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

  it('sets rlimits in the shell before the exec, soft under hard, bytes in the shell units', () => {
    const commands = rlimitCommands([
      { type: 'RLIMIT_NOFILE', soft: 900, hard: 1000 },
      { type: 'RLIMIT_STACK', soft: 4 * 1024 * 1024 + 100, hard: 'unlimited' },
      { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
    ]);
    // The guest's shell is busybox ash: run the commands in the same applet here.
    const out = execFileSync(
      'busybox',
      [
        'sh',
        '-c',
        [...commands, 'ulimit -Sn; ulimit -Hn; ulimit -Ss; ulimit -Hs; ulimit -Hc'].join('\n'),
      ],
      { encoding: 'utf8' },
    );
    expect(out.split('\n')).toEqual(['900', '1000', '4096', 'unlimited', '0', '']);
    const script = containerExecScript(
      { ...spec.process, rlimits: [{ type: 'RLIMIT_NOFILE', soft: 64, hard: 64 }] },
      { cgroupDir: '/sys/fs/cgroup/ctr-web', initPid: 77 },
    );
    expect(script.indexOf('ulimit -Hn 64')).toBeLessThan(script.indexOf('nsenter'));
  });

  it('stops the script when a limit cannot be set', () => {
    // A soft limit above the hard one is refused by the kernel; the program never runs.
    const script = [
      ...rlimitCommands([{ type: 'RLIMIT_NOFILE', soft: 200, hard: 100 }]),
      'echo ran',
    ].join('\n');
    let failure: { status: number; stderr: string } | undefined;
    try {
      execFileSync('busybox', ['sh', '-c', script], { encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      failure = err as { status: number; stderr: string };
    }
    expect(failure?.status).toBe(126);
    expect(failure?.stderr).toContain('edgebox: cannot set RLIMIT_NOFILE');
  });

  it('sets no_new_privs before nsenter when the spec asks for it', () => {
    const script = containerExecScript(
      { ...spec.process, noNewPrivileges: true },
      { cgroupDir: '/sys/fs/cgroup/ctr-web', initPid: 77 },
    );
    expect(script).toContain(`/bin/setpriv --nnp /bin/nsenter -t 77`);
    expect(containerExecScript(spec.process, { cgroupDir: '/x', initPid: 77 })).not.toContain(
      'setpriv',
    );
    // The guest's busybox applet does what the flag says.
    const status = execFileSync('busybox', ['setpriv', '--nnp', 'cat', '/proc/self/status'], {
      encoding: 'utf8',
    });
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
  });
});

/** Runs a terminal script as the agent does: output, and the status its shell writes on fd 3. */
async function runTerminalScript(script: string): Promise<{ output: string; status: string }> {
  const child = spawn('/bin/sh', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  let output = '';
  let status = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdio[TERMINAL_STATUS_FD]?.on('data', (chunk: Buffer) => {
    status += chunk.toString();
    child.stdin.end();
  });
  await new Promise((resolve) => child.on('close', resolve));
  return { output, status };
}

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
    const { output, status } = await runTerminalScript(relay);
    expect({ output, status }).toEqual({ output: 'a  b\r\non-a-tty\r\n', status: '7\n' });
  });

  it("runs a terminal exec's rlimits and program on the pty and reports the program's status", async () => {
    // Entered into this test's own namespaces: the script is the guest's, only the ids differ.
    const script = containerTerminalExecScript(
      {
        args: ['sh', '-c', 'ulimit -Sn; tty >/dev/null && echo on-a-tty; exit 4'],
        env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
        cwd: '/',
        user: { uid: 0, gid: 0 },
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 64, hard: 64 }],
      },
      {
        cgroupDir: mkdtempSync(join(tmpdir(), 'edgebox-tty-')),
        initPid: process.pid,
        rootfs: '/',
        socat: '/usr/bin/socat',
        socatLibraries: '/nonexistent',
      },
    );
    const { output, status } = await runTerminalScript(script);
    expect({ output, status }).toEqual({ output: '64\r\non-a-tty\r\n', status: '4\n' });
  });
});
