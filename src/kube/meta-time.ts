/** metav1.Time as the apiserver writes it: RFC 3339 in whole seconds. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** metav1.MicroTime (a Lease's renewTime): RFC 3339 with six fractional digits. */
export function formatMicroTime(epochMicros: number): string {
  const micros = ((epochMicros % 1e6) + 1e6) % 1e6;
  const seconds = (epochMicros - micros) / 1e6;
  return formatTime(seconds * 1000).replace(/Z$/, `.${String(micros).padStart(6, '0')}Z`);
}
