import { compareGoStrings } from './go-text.ts';
import type { FieldOperator, FieldRequirement } from './selectors.ts';

/**
 * The field selector syntax of k8s.io/apimachinery/pkg/fields
 * (ParseSelector): comma-separated terms, backslash escapes (`\\`, `\,`,
 * `\=`) in values, terms in sorted order. Which fields a resource accepts is decided
 * afterwards, by selectable-fields.ts.
 */

/** Splits on commas not escaped by a backslash; the escapes stay in the terms. */
function splitTerms(text: string): string[] {
  if (text === '') return [];
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (escaped) escaped = false;
    else if (c === '\\') escaped = true;
    else if (c === ',') {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

const TERM_OPERATORS: readonly FieldOperator[] = ['!=', '==', '='];

/** The first operator from the left splits the term; the field part has no escaping. */
function splitTerm(
  term: string,
): { field: string; operator: FieldOperator; rawValue: string } | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const operator of TERM_OPERATORS) {
      if (term.startsWith(operator, i)) {
        return { field: term.slice(0, i), operator, rawValue: term.slice(i + operator.length) };
      }
    }
  }
  return undefined;
}

const NEEDS_UNESCAPING = /[\\,=]/;

function unescapeValue(raw: string): { ok: true; value: string } | { ok: false; message: string } {
  if (!NEEDS_UNESCAPING.test(raw)) return { ok: true, value: raw };
  let out = '';
  let escaped = false;
  for (const c of raw) {
    if (escaped) {
      if (c !== '\\' && c !== ',' && c !== '=') {
        return { ok: false, message: `invalid field selector: invalid escape sequence: \\${c}` };
      }
      out += c;
      escaped = false;
    } else if (c === '\\') {
      escaped = true;
    } else if (c === ',' || c === '=') {
      // Go prints the rune with %v, i.e. as its number.
      return {
        ok: false,
        message: `invalid field selector: unescaped character in value: ${c.codePointAt(0)}`,
      };
    } else {
      out += c;
    }
  }
  if (escaped) return { ok: false, message: 'invalid field selector: invalid escape sequence: \\' };
  return { ok: true, value: out };
}

/** fields.ParseSelector's terms, or the apiserver's message for the first bad one. */
export function parseFieldTerms(
  text: string,
): { ok: true; requirements: FieldRequirement[] } | { ok: false; message: string } {
  const terms = splitTerms(text).sort(compareGoStrings);
  const requirements: FieldRequirement[] = [];
  for (const term of terms) {
    if (term === '') continue;
    const split = splitTerm(term);
    if (split === undefined) {
      return { ok: false, message: `invalid selector: '${text}'; can't understand '${term}'` };
    }
    const value = unescapeValue(split.rawValue);
    if (!value.ok) return value;
    requirements.push({ field: split.field, operator: split.operator, value: value.value });
  }
  return { ok: true, requirements };
}
