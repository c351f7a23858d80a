import { connect, type Socket } from 'node:net';
import { listeningChild } from './listening-child.ts';

/**
 * A server address whose link died silently: connections to it neither
 * succeed nor fail, they time out (what a cut cable or a dropping firewall
 * on the way to kube-apiserver looks like from the node).
 *
 * Made with the kernel's own behaviour rather than a firewall rule: a child
 * process listens with a backlog of 1 and then blocks its event loop, so it
 * never accepts. Linux completes handshakes into the accept queue until it
 * holds backlog + 1 connections, then drops every further SYN. Two filler
 * connections take those places, so every connection after them hangs.
 */
export interface BlackHole {
  url: string;
  close(): void;
}

const LISTEN_AND_BLOCK = `
const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  require('node:fs').writeSync(1, server.address().port + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // never accepts
});
`;

const QUEUE_PLACES = 2;

export async function blackHole(): Promise<BlackHole> {
  const { child, port } = await listeningChild(['-e', LISTEN_AND_BLOCK]);
  const fillers: Socket[] = [];
  for (let i = 0; i < QUEUE_PLACES; i++) {
    fillers.push(
      await new Promise<Socket>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      }),
    );
  }
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}
