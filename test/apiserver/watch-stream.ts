import type { ServerResponse } from 'node:http';
import { expired } from '../../src/kube/status.ts';
import type { KubeObject } from './object-meta.ts';
import type { ResourceType } from './resource-types.ts';
import { buildTable, type IncludeObject } from './table-printer.ts';
import {
  ResourceVersionTooOldError,
  type StorageEvent,
  type StoredObject,
  type VersionedStorage,
  type WatchEventType,
} from './versioned-storage.ts';

/**
 * One WATCH response: HTTP 200, chunked, one JSON event per line, flushed as
 * it happens. Follows the watch cache: synthetic ADDED events for a watch
 * without a resourceVersion, replay from history for one with, an ERROR
 * event carrying 410 Expired when that history is gone, filtered-watch
 * semantics (objects leaving the selection are DELETED, entering ADDED),
 * periodic BOOKMARKs, and a clean end at timeoutSeconds.
 */

export type WatchStart =
  /** Synthetic ADDED events for the current state, then changes. */
  | { kind: 'initial-state'; endBookmark: boolean }
  /** Changes after now only. */
  | { kind: 'now' }
  /** Changes after this resourceVersion (from history). */
  | { kind: 'from'; rv: number };

export interface WatchRequest {
  type: ResourceType;
  start: WatchStart;
  match: (stored: StoredObject) => boolean;
  allowBookmarks: boolean;
  bookmarkIntervalMs: number;
  timeoutMs: number;
  table: { includeObject: IncludeObject; now: () => number } | undefined;
}

type EventLineType = WatchEventType | 'BOOKMARK' | 'ERROR';

/** Serialized lines per storage event, shared by every watcher that sends it. */
const lineCache = new WeakMap<StorageEvent, Map<string, string>>();

function eventLine(type: EventLineType, objectJson: string): string {
  return `{"type":"${type}","object":${objectJson}}\n`;
}

function withResourceVersion(json: string, rv: number): string {
  const obj = JSON.parse(json) as KubeObject;
  obj.metadata.resourceVersion = String(rv);
  return JSON.stringify(obj);
}

export class WatchStream {
  readonly #res: ServerResponse;
  readonly #storage: VersionedStorage;
  readonly #req: WatchRequest;
  readonly #timers: NodeJS.Timeout[] = [];
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  #tableColumnsSent = false;
  readonly #onClose: () => void;

  constructor(
    res: ServerResponse,
    storage: VersionedStorage,
    req: WatchRequest,
    onClose: () => void,
  ) {
    this.#res = res;
    this.#storage = storage;
    this.#req = req;
    this.#onClose = onClose;
  }

  /** Sends headers and the initial events, then streams until timeout, client close or cut. */
  start(): void {
    const res = this.#res;
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    res.on('close', () => this.#cleanup());

    const { type, start } = this.#req;
    let backlog: Array<() => void> = [];
    if (start.kind === 'from') {
      let events: StorageEvent[];
      try {
        events = this.#storage.eventsSince(type, start.rv);
      } catch (err) {
        if (!(err instanceof ResourceVersionTooOldError)) throw err;
        const status = expired(`too old resource version: ${err.requested} (${err.oldest})`);
        this.#write(eventLine('ERROR', JSON.stringify(status)));
        this.close();
        return;
      }
      backlog = events.map((e) => () => this.#deliver(e));
    } else if (start.kind === 'initial-state') {
      const snapshot = this.#storage.snapshot(type);
      for (const key of snapshot.keys) {
        const stored = snapshot.get(key);
        if (stored !== undefined && this.#req.match(stored)) {
          backlog.push(() => this.#send('ADDED', stored.json));
        }
      }
      if (start.endBookmark) {
        const rv = snapshot.rv;
        backlog.push(() => this.#bookmark(rv, true));
      }
    }
    const minRV = start.kind === 'from' ? start.rv : this.#storage.resourceVersion;
    // Subscribing in the same tick as reading history/snapshot: no event can fall in between.
    this.#unsubscribe = this.#storage.subscribe(type, (event) => {
      if (event.rv > minRV) this.#deliver(event);
    });
    for (const send of backlog) send();

    if (this.#req.allowBookmarks) {
      const timer = setInterval(
        () => this.#bookmark(this.#storage.resourceVersion, false),
        this.#req.bookmarkIntervalMs,
      );
      timer.unref();
      this.#timers.push(timer);
    }
    const timeout = setTimeout(() => this.close(), this.#req.timeoutMs);
    timeout.unref();
    this.#timers.push(timeout);
  }

  /** Ends the stream cleanly (the chunked terminator is sent). */
  close(): void {
    if (this.#closed) return;
    this.#cleanup();
    this.#res.end();
  }

  /** Destroys the connection mid-stream, as a network cut or a crashed apiserver would. */
  cut(): void {
    this.#cleanup();
    this.#res.socket?.destroy();
    this.#res.destroy();
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    for (const t of this.#timers) clearTimeout(t);
    this.#onClose();
  }

  #deliver(event: StorageEvent): void {
    const match = this.#req.match;
    const now = event.type !== 'DELETED' && match(event.object);
    const before = event.previous !== undefined && match(event.previous);
    if (now && before) this.#sendEvent(event, 'MODIFIED', () => event.object.json);
    else if (now) this.#sendEvent(event, 'ADDED', () => event.object.json);
    else if (before) {
      // Leaving the selection: the previous content, at the event's resourceVersion.
      this.#sendEvent(event, 'DELETED', () =>
        event.type === 'DELETED'
          ? event.object.json
          : withResourceVersion(event.previous?.json ?? '{}', event.rv),
      );
    }
  }

  #sendEvent(event: StorageEvent, type: WatchEventType, objectJson: () => string): void {
    if (this.#req.table !== undefined) {
      this.#send(type, objectJson());
      return;
    }
    let lines = lineCache.get(event);
    if (lines === undefined) {
      lines = new Map();
      lineCache.set(event, lines);
    }
    let line = lines.get(type);
    if (line === undefined) {
      line = eventLine(type, objectJson());
      lines.set(type, line);
    }
    this.#write(line);
  }

  #send(type: WatchEventType, objectJson: string): void {
    const table = this.#req.table;
    if (table === undefined) {
      this.#write(eventLine(type, objectJson));
      return;
    }
    const obj = JSON.parse(objectJson) as KubeObject;
    const t = buildTable(this.#req.type, [obj], {
      includeObject: table.includeObject,
      withColumns: !this.#tableColumnsSent,
      resourceVersion: obj.metadata.resourceVersion,
      now: table.now(),
    });
    this.#tableColumnsSent = true;
    this.#write(eventLine(type, JSON.stringify(t)));
  }

  #bookmark(rv: number, initialEventsEnd: boolean): void {
    const { type } = this.#req;
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (initialEventsEnd) metadata.annotations = { 'k8s.io/initial-events-end': 'true' };
    this.#write(
      eventLine(
        'BOOKMARK',
        JSON.stringify({ kind: type.kind, apiVersion: type.apiVersion, metadata }),
      ),
    );
  }

  #write(line: string): void {
    if (this.#closed) return;
    this.#res.write(line);
  }
}
