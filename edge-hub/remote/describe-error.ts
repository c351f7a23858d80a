/** An error as logs and health reports name it: its code (ECONNREFUSED, ...) and message. */
export function describeError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.includes(code)
    ? `${code}: ${err.message}`
    : err.message;
}
