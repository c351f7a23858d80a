import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const definition = protoLoader.loadSync(fileURLToPath(new URL('./cri.proto', import.meta.url)), {
  keepCase: true,
  longs: Number,
  defaults: true,
});
const runtimeV1 = (grpc.loadPackageDefinition(definition).runtime as grpc.GrpcObject)
  .v1 as grpc.GrpcObject;
const RuntimeService = runtimeV1.RuntimeService as grpc.ServiceClientConstructor;

export type CriMessage = Record<string, unknown>;

/** A CRI RuntimeService client (what kubelet speaks) on containerd's socket. */
export class CriClient {
  readonly #client: grpc.Client;

  constructor(socketPath: string) {
    this.#client = new RuntimeService(`unix://${socketPath}`, grpc.credentials.createInsecure());
  }

  call<T = CriMessage>(method: string, request: CriMessage, timeoutMs = 240_000): Promise<T> {
    const fn = (
      this.#client as unknown as Record<
        string,
        (
          req: CriMessage,
          options: grpc.CallOptions,
          done: (err: grpc.ServiceError | null, reply: T) => void,
        ) => void
      >
    )[method];
    if (!fn) throw new Error(`CRI has no method ${method} here`);
    return new Promise((resolve, reject) => {
      fn.call(
        this.#client,
        request,
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, reply: T) =>
          err ? reject(new Error(`CRI ${method}: ${err.details || err.message}`)) : resolve(reply),
      );
    });
  }

  close(): void {
    this.#client.close();
  }
}
