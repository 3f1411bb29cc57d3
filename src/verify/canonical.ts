/**
 * RFC 8785 JSON canonicalization for the small, string/integer-only objects Rekor
 * signs: keys sorted by UTF-16 code units, no whitespace. JSON.stringify's string and
 * integer encodings already match RFC 8785 for these values.
 */
export function canonicalize(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalize).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalize(o[k])}`).join(',')}}`;
}
