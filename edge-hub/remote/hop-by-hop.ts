/**
 * Request headers that belong to the client's connection to the hub, not to
 * the request: never forwarded upstream (RFC 9110 7.6.1). Each path adds what
 * its own forwarding makes meaningless.
 */
export const HOP_BY_HOP_REQUEST_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
];
