import { createRequire } from 'node:module';
import type * as NodeHttp from 'node:http';

/**
 * node:http, loaded with require(). An ES `import ... from 'node:http'`
 * builds a namespace of every export, and reading node:http's lazy
 * WebSocket, CloseEvent and MessageEvent exports loads undici: ~0.8 MB of
 * source and 2-3 MB resident in a hub that never uses it (measured with
 * `npm run bench -- hub --memory-only`). require() reads only what is used.
 * Every module of the hub's serve path should take node:http from here.
 */
export const nodeHttp = createRequire(import.meta.url)('node:http') as typeof NodeHttp;
