/** A spec the VM runtime cannot honour: the message names the field. */
export class UnsupportedSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedSpecError';
  }
}
