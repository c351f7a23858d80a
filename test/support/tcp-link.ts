import { listeningChild } from './listening-child.ts';

/**
 * The network path between a node and its control plane, as a TCP relay in
 * its own process, that can be cut the way edge links fail: silently. `cut()`
 * stops the relay (SIGSTOP): connections open through it hang with no error,
 * and since it listens with a backlog of 1, the kernel completes two more
 * handshakes and then drops every SYN, so new connections time out.
 * `restore()` (SIGCONT) lets everything flow again, the queued connections
 * included.
 */
export interface TcpLink {
  url: string;
  cut(): void;
  restore(): void;
  close(): void;
}

const RELAY = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const server = net.createServer((client) => {
  const upstream = net.connect(Number(port), host);
  client.pipe(upstream).pipe(client);
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n');
});
`;

export async function tcpLink(target: string): Promise<TcpLink> {
  const to = new URL(target);
  const { child, port } = await listeningChild(['-e', RELAY, to.hostname, to.port]);
  return {
    url: `http://127.0.0.1:${port}`,
    cut: () => child.kill('SIGSTOP'),
    restore: () => child.kill('SIGCONT'),
    close: () => {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    },
  };
}
