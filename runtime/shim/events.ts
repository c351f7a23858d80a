import type { Logger } from '../../src/log.ts';
import { codecFor, timestamp, type Message } from './codec.ts';
import { TtrpcClient } from './ttrpc.ts';

/** Topics and message names containerd files task events under. */
const EVENT_TYPES = {
  '/tasks/create': 'TaskCreate',
  '/tasks/start': 'TaskStart',
  '/tasks/exit': 'TaskExit',
  '/tasks/delete': 'TaskDelete',
  '/tasks/exec-added': 'TaskExecAdded',
  '/tasks/exec-started': 'TaskExecStarted',
  '/tasks/oom': 'TaskOOM',
  '/tasks/paused': 'TaskPaused',
  '/tasks/resumed': 'TaskResumed',
} as const;
export type EventTopic = keyof typeof EVENT_TYPES;

const forwardRequest = codecFor('containerd.events.ForwardRequest');

export interface EventSink {
  publish(topic: EventTopic, event: Message): void;
}

/**
 * Forwards task events to containerd's ttrpc Events service, one at a time
 * in the order they were published (containerd and CRI rely on Create →
 * Start → Exit → Delete). A failed forward is logged and the connection is
 * made again for the next event.
 */
export class EventPublisher implements EventSink {
  readonly #address: string;
  readonly #namespace: string;
  readonly #log: Logger;
  #client: Promise<TtrpcClient> | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(address: string, namespace: string, log: Logger) {
    this.#address = address.replace(/^unix:\/\//, '');
    this.#namespace = namespace;
    this.#log = log;
  }

  publish(topic: EventTopic, event: Message): void {
    const name = EVENT_TYPES[topic];
    const payload = forwardRequest.encode({
      envelope: {
        timestamp: timestamp(new Date()),
        namespace: this.#namespace,
        topic,
        event: {
          type_url: `containerd.events.${name}`,
          value: codecFor(`containerd.events.${name}`).encode(event),
        },
      },
    });
    this.#queue = this.#queue.then(async () => {
      try {
        this.#client ??= TtrpcClient.connect(this.#address);
        const client = await this.#client;
        await client.call('containerd.services.events.ttrpc.v1.Events', 'Forward', payload);
      } catch (err) {
        this.#client = undefined;
        this.#log.error({ err, topic }, 'cannot forward event to containerd');
      }
    });
  }

  /** Resolves once every event published so far has been forwarded (or failed). */
  flushed(): Promise<void> {
    return this.#queue;
  }

  close(): void {
    void this.#client?.then((c) => c.close()).catch(() => undefined);
  }
}
