import type { ServerResponse } from 'node:http';
import { badRequest, expired } from '../../src/kube/status.ts';
import type { Logger } from '../../src/log.ts';
import type { HubRequest } from '../hub-request.ts';
import { queryOf, type OfflineCache } from '../cache/offline-cache.ts';
import type { ObjectRewrite } from '../filter/filter-chain.ts';
import { baseHeaders, drained, writeCachedStatus } from './cached-response.ts';
import { decodeContinue, encodeContinue, ForeignContinueError } from './continue-token.ts';
import { scopeNotCached } from './not-cached.ts';

function parseLimit(text: string | null): number | Error {
  if (text === null || text === '') return 0;
  if (!/^-?[0-9]+$/.test(text))
    return new Error(`invalid limit ${JSON.stringify(text)}: not an integer`);
  const n = Number(text);
  return n > 0 ? n : 0;
}

/** Writes a list body as it is produced, honouring back-pressure. */
class ListBodyWriter {
  private readonly res: ServerResponse;
  private readonly rewrite: ObjectRewrite | undefined;
  private first = true;
  /** `rewrite`: the response filters' (an item they drop is left out). */
  constructor(res: ServerResponse, rewrite: ObjectRewrite | undefined) {
    this.res = res;
    this.rewrite = rewrite;
  }
  async head(kind: string, apiVersion: string, metadata: Record<string, unknown>): Promise<void> {
    await this.send(
      Buffer.from(
        `{"kind":${JSON.stringify(kind)},"apiVersion":${JSON.stringify(apiVersion)},"metadata":${JSON.stringify(metadata)},"items":[`,
      ),
    );
  }
  async items(raws: readonly Buffer[]): Promise<void> {
    if (raws.length === 0) return;
    const parts: Buffer[] = [];
    for (const stored of raws) {
      const raw = this.rewrite === undefined ? stored : this.rewrite(stored);
      if (raw === undefined) continue;
      if (!this.first) parts.push(COMMA);
      this.first = false;
      parts.push(raw);
    }
    if (parts.length > 0) await this.send(Buffer.concat(parts));
  }
  end(): void {
    this.res.end(TAIL);
  }
  private async send(chunk: Buffer): Promise<void> {
    if (this.res.destroyed) throw new Error('client went away');
    this.res.write(chunk);
    await drained(this.res);
  }
}
const COMMA = Buffer.from(',');
const TAIL = Buffer.from(']}\n');

/**
 * Offline LIST: one page of what the cache knows of the request's scope
 * (cache/offline-cache.ts), in the apiserver's JSON shape, its `continue`
 * the hub's own token; otherwise the 503 saying why.
 */
export async function answerList(
  deps: { cache: OfflineCache; log: Logger; rewrite?: ObjectRewrite | undefined },
  req: HubRequest,
  res: ServerResponse,
): Promise<void> {
  const limit = parseLimit(req.query.get('limit'));
  if (limit instanceof Error) return writeCachedStatus(res, badRequest(limit.message));
  const continueText = req.query.get('continue') ?? '';
  const token = continueText === '' ? undefined : decodeContinue(continueText);
  if (token instanceof ForeignContinueError) return writeCachedStatus(res, expired(token.message));
  if (token instanceof Error) return writeCachedStatus(res, badRequest(token.message));

  const answer = await deps.cache.list(queryOf(req), {
    limit,
    ...(token === undefined ? {} : { after: { id: token.start, resourceVersion: token.rv } }),
  });
  if (answer instanceof Error) return writeCachedStatus(res, badRequest(answer.message));
  if (!('bodies' in answer)) {
    return writeCachedStatus(res, scopeNotCached(answer.coverage, deps.cache.loss()));
  }
  const metadata: Record<string, unknown> = { resourceVersion: answer.resourceVersion };
  if (answer.continue !== undefined) {
    metadata.continue = encodeContinue(answer.resourceVersion, answer.continue);
    if (answer.remainingItemCount !== undefined) {
      metadata.remainingItemCount = answer.remainingItemCount;
    }
  }
  res.writeHead(200, baseHeaders());
  const body = new ListBodyWriter(res, deps.rewrite);
  try {
    await body.head(`${answer.identity.kind}List`, answer.identity.apiVersion, metadata);
    for await (const batch of answer.bodies) await body.items(batch);
    body.end();
  } catch (err) {
    deps.log.debug({ err: String(err) }, 'offline list not completed');
    res.destroy();
  }
}
