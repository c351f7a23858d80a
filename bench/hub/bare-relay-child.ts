// The floor of the proxy rows (bare-relay.ts): the least a proxy written in
// Node does per read. One raw socket per client, kept raw sockets to
// upstream, the request head passed on as it came (GETs, no body), the
// answer's bytes written back as they arrive until its Content-Length is
// reached. No header rewriting, no credentials, no recording, no failure
// handling: not a proxy anyone should run, a measure of what Node itself
// costs on this machine. Argv: upstream host, upstream port; prints its
// own port on stdout.
import { connect, createServer, type Socket } from 'node:net';

const [host = '127.0.0.1', port = '0'] = process.argv.slice(2);
const idle: Socket[] = [];
const HEAD_END = Buffer.from('\r\n\r\n');

function upstreamConnection(): Socket {
  const kept = idle.pop();
  if (kept !== undefined) return kept;
  const socket = connect(Number(port), host).setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    const i = idle.indexOf(socket);
    if (i !== -1) idle.splice(i, 1);
  });
  return socket;
}

/** Bytes of the answer still to come once its head is in `head` (-1: the head is incomplete). */
function remainingAfterHead(head: Buffer): number {
  const end = head.indexOf(HEAD_END);
  if (end === -1) return -1;
  const length = /\r\ncontent-length: *(\d+)/i.exec(head.toString('latin1', 0, end));
  if (length === null) throw new Error('the bare relay handles Content-Length answers only');
  return Number(length[1]) - (head.length - end - HEAD_END.length);
}

function serveClient(client: Socket): void {
  client.setNoDelay(true);
  let pending: Buffer | undefined;
  let busy = false;
  const next = (): void => {
    if (busy || pending === undefined) return;
    const end = pending.indexOf(HEAD_END);
    if (end === -1) return;
    const request = pending.subarray(0, end + HEAD_END.length);
    pending = end + HEAD_END.length === pending.length ? undefined : pending.subarray(end + 4);
    busy = true;
    const upstream = upstreamConnection();
    let head: Buffer | undefined;
    let remaining = -1;
    const onData = (chunk: Buffer): void => {
      client.write(chunk);
      if (remaining === -1) {
        head = head === undefined ? chunk : Buffer.concat([head, chunk]);
        remaining = remainingAfterHead(head);
        if (remaining === -1) return;
        head = undefined;
      } else {
        remaining -= chunk.length;
      }
      if (remaining > 0) return;
      upstream.removeListener('data', onData);
      idle.push(upstream);
      busy = false;
      next();
    };
    upstream.on('data', onData);
    upstream.write(request);
  };
  client.on('data', (chunk: Buffer) => {
    pending = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    next();
  });
  client.on('error', () => client.destroy());
}

const server = createServer(serveClient);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  process.stdout.write(`${address.port}\n`);
});
