import { compareGoStrings, goParseInt64, goQuote, goStringSliceSyntax } from './go-text.ts';
import {
  aggregateMessage,
  invalidFieldError,
  labelKeyErrors,
  labelValueErrors,
} from './label-validation.ts';
import type { LabelOperator, LabelRequirement } from './selectors.ts';

/**
 * The label selector grammar of k8s.io/apimachinery/pkg/labels (Lexer,
 * Parser, NewRequirement), including its quirks, with its error messages.
 */

export type LabelParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

// ---------------------------------------------------------------------------
// Lexer, as labels.Lexer: byte-wise, whitespace is ' \t\r\n',
// a NUL character ends the input the way Go's lexer reads it.

type Token =
  | 'end'
  | 'identifier'
  | 'in'
  | 'notin'
  | '('
  | ')'
  | ','
  | '!'
  | '='
  | '=='
  | '!='
  | '>'
  | '<'
  | 'error';

interface Scanned {
  token: Token;
  literal: string;
}

const END: Scanned = { token: 'end', literal: '' };
const SPECIAL_SYMBOLS: ReadonlySet<string> = new Set(['=', '!', '(', ')', ',', '>', '<']);
const WHITESPACE: ReadonlySet<string> = new Set([' ', '\t', '\r', '\n']);
const SYMBOL_TOKENS: ReadonlyMap<string, Token> = new Map<string, Token>([
  [')', ')'],
  [',', ','],
  ['!', '!'],
  ['==', '=='],
  ['=', '='],
  ['>', '>'],
  ['<', '<'],
  ['!=', '!='],
  ['(', '('],
]);

function scanLabelSelector(input: string): Scanned[] {
  let pos = 0;
  const read = (): string => (pos < input.length ? (input[pos++] ?? '\0') : '\0');
  const unread = (): void => {
    pos -= 1;
  };

  const scanIdentifierOrKeyword = (): Scanned => {
    const start = pos;
    let end: number;
    for (;;) {
      // The identifier ends before the character that stops it (a consumed NUL included).
      end = pos;
      const ch = read();
      if (ch === '\0') break;
      if (SPECIAL_SYMBOLS.has(ch) || WHITESPACE.has(ch)) {
        unread();
        break;
      }
    }
    const literal = input.slice(start, end);
    if (literal === 'in' || literal === 'notin') return { token: literal, literal };
    return { token: 'identifier', literal };
  };

  const scanSpecialSymbol = (): Scanned => {
    let buffer = '';
    let last: Scanned | undefined;
    for (;;) {
      const ch = read();
      if (ch === '\0') break;
      if (!SPECIAL_SYMBOLS.has(ch)) {
        unread();
        break;
      }
      buffer += ch;
      const token = SYMBOL_TOKENS.get(buffer);
      if (token !== undefined) {
        last = { token, literal: buffer };
      } else if (last !== undefined) {
        unread();
        break;
      }
    }
    return last ?? { token: 'error', literal: `error expected: keyword found '${buffer}'` };
  };

  const items: Scanned[] = [];
  for (;;) {
    let ch = read();
    while (WHITESPACE.has(ch)) ch = read();
    if (ch === '\0') {
      items.push(END);
      return items;
    }
    unread();
    items.push(SPECIAL_SYMBOLS.has(ch) ? scanSpecialSymbol() : scanIdentifierOrKeyword());
  }
}

// ---------------------------------------------------------------------------
// Parser, as labels.Parser.

/** Thrown inside the parser and turned into a result at its boundary. */
class ParseFailure extends Error {}

function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort(compareGoStrings);
}

/**
 * labels.NewRequirement's checks. `values` undefined stands for a nil Go
 * slice, which prints differently in the messages.
 */
function requirementErrors(
  key: string,
  operator: LabelOperator,
  values: readonly string[] | undefined,
): string[] {
  const list = values ?? [];
  const printed = goStringSliceSyntax(values);
  const errs: string[] = [];
  const keyErrs = labelKeyErrors(key);
  if (keyErrs.length > 0) errs.push(invalidFieldError('key', goQuote(key), keyErrs.join('; ')));
  switch (operator) {
    case 'in':
    case 'notin':
      if (list.length === 0) {
        errs.push(
          invalidFieldError(
            'values',
            printed,
            "for 'in', 'notin' operators, values set can't be empty",
          ),
        );
      }
      break;
    case '=':
    case '==':
    case '!=':
      if (list.length !== 1) {
        errs.push(
          invalidFieldError(
            'values',
            printed,
            'exact-match compatibility requires one single value',
          ),
        );
      }
      break;
    case 'exists':
    case '!':
      if (list.length !== 0) {
        errs.push(
          invalidFieldError(
            'values',
            printed,
            'values set must be empty for exists and does not exist',
          ),
        );
      }
      break;
    case 'gt':
    case 'lt':
      if (list.length !== 1) {
        errs.push(
          invalidFieldError(
            'values',
            printed,
            "for 'Gt', 'Lt' operators, exactly one value is required",
          ),
        );
      }
      list.forEach((value, i) => {
        if (goParseInt64(value) === undefined) {
          errs.push(
            invalidFieldError(
              `values[${i}]`,
              goQuote(value),
              "for 'Gt', 'Lt' operators, the value must be an integer",
            ),
          );
        }
      });
      break;
  }
  list.forEach((value, i) => {
    const valueErrs = labelValueErrors(value);
    if (valueErrs.length > 0) {
      errs.push(invalidFieldError(`values[${i}][${key}]`, goQuote(value), valueErrs.join('; ')));
    }
  });
  return errs;
}

function newRequirement(
  key: string,
  operator: LabelOperator,
  values: readonly string[] | undefined,
): LabelRequirement {
  const errs = requirementErrors(key, operator, values);
  if (errs.length > 0) throw new ParseFailure(aggregateMessage(errs));
  return { key, operator, values: [...(values ?? [])] };
}

const BINARY_OPERATORS = 'in, notin, =, ==, !=, gt, lt';

function parseRequirements(input: string): LabelRequirement[] {
  const items = scanLabelSelector(input);
  let position = 0;
  // In a value position the keywords in/notin are plain identifiers ("a in (in)").
  const asValue = (item: Scanned): Scanned =>
    item.token === 'in' || item.token === 'notin'
      ? { token: 'identifier', literal: item.literal }
      : item;
  const peekValue = (): Scanned => asValue(items[position] ?? END);
  const takeValue = (): Scanned => asValue(items[position++] ?? END);
  const takeOperator = (): Scanned => items[position++] ?? END;

  const parseKeyAndInferOperator = (): { key: string; operator: LabelOperator | undefined } => {
    let operator: LabelOperator | undefined;
    let item = takeValue();
    if (item.token === '!') {
      operator = '!';
      item = takeValue();
    }
    if (item.token !== 'identifier')
      throw new ParseFailure(`found '${item.literal}', expected: identifier`);
    const keyErrs = labelKeyErrors(item.literal);
    if (keyErrs.length > 0) {
      // The parser validates keys with a nil field path, which Go prints as "<nil>".
      throw new ParseFailure(invalidFieldError('<nil>', goQuote(item.literal), keyErrs.join('; ')));
    }
    const next = peekValue().token;
    if ((next === 'end' || next === ',') && operator !== '!') operator = 'exists';
    return { key: item.literal, operator };
  };

  const parseOperator = (): LabelOperator => {
    const item = takeOperator();
    switch (item.token) {
      case 'in':
        return 'in';
      case 'notin':
        return 'notin';
      case '=':
        return '=';
      case '==':
        return '==';
      case '!=':
        return '!=';
      case '>':
        return 'gt';
      case '<':
        return 'lt';
      default:
        throw new ParseFailure(`found '${item.literal}', expected: ${BINARY_OPERATORS}`);
    }
  };

  const parseIdentifiersList = (): Set<string> => {
    const values = new Set<string>();
    for (;;) {
      const item = takeValue();
      if (item.token === 'identifier') {
        values.add(item.literal);
        const next = peekValue();
        if (next.token === ',') continue;
        if (next.token === ')') return values;
        throw new ParseFailure(`found '${next.literal}', expected: ',' or ')'`);
      }
      if (item.token === ',') {
        // "(,a)", "(a,)" and "(a,,b)" each hold the empty value too.
        if (values.size === 0) values.add('');
        const next = peekValue().token;
        if (next === ')') {
          values.add('');
          return values;
        }
        if (next === ',') values.add('');
        continue;
      }
      throw new ParseFailure(`found '${item.literal}', expected: ',', or identifier`);
    }
  };

  const parseValues = (): Set<string> => {
    const open = takeValue();
    if (open.token !== '(') throw new ParseFailure(`found '${open.literal}' expected: '('`);
    const next = peekValue();
    if (next.token === 'identifier' || next.token === ',') {
      const values = parseIdentifiersList();
      if (takeValue().token !== ')')
        throw new ParseFailure(`found '${next.literal}', expected: ')'`);
      return values;
    }
    if (next.token === ')') {
      takeValue();
      return new Set(['']);
    }
    throw new ParseFailure(`found '${next.literal}', expected: ',', ')' or identifier`);
  };

  const parseExactValue = (): Set<string> => {
    const next = peekValue().token;
    if (next === 'end' || next === ',') return new Set(['']);
    const item = takeValue();
    if (item.token === 'identifier') return new Set([item.literal]);
    throw new ParseFailure(`found '${item.literal}', expected: identifier`);
  };

  const parseRequirement = (): LabelRequirement => {
    const { key, operator: inferred } = parseKeyAndInferOperator();
    if (inferred === 'exists' || inferred === '!') return newRequirement(key, inferred, []);
    const operator = parseOperator();
    const values = operator === 'in' || operator === 'notin' ? parseValues() : parseExactValue();
    return newRequirement(key, operator, sortedUnique(values));
  };

  const requirements: LabelRequirement[] = [];
  for (;;) {
    const item = peekValue();
    if (item.token === 'end') return requirements;
    if (item.token !== 'identifier' && item.token !== '!') {
      throw new ParseFailure(
        `found '${item.literal}', expected: !, identifier, or 'end of string'`,
      );
    }
    try {
      requirements.push(parseRequirement());
    } catch (err) {
      if (err instanceof ParseFailure)
        throw new ParseFailure(`unable to parse requirement: ${err.message}`);
      throw err;
    }
    const after = takeValue();
    if (after.token === 'end') return requirements;
    if (after.token !== ',') {
      throw new ParseFailure(`found '${after.literal}', expected: ',' or 'end of string'`);
    }
    const next = peekValue();
    if (next.token !== 'identifier' && next.token !== '!') {
      throw new ParseFailure(`found '${next.literal}', expected: identifier after ','`);
    }
  }
}

/** labels.NewRequirement, for requirements built from a spec's selector object. */
export function labelRequirement(
  key: string,
  operator: LabelOperator,
  values: readonly string[] | undefined,
): LabelParseResult<LabelRequirement> {
  try {
    return { ok: true, value: newRequirement(key, operator, values) };
  } catch (err) {
    if (err instanceof ParseFailure) return { ok: false, message: err.message };
    throw err;
  }
}

/** labels.Parse: the requirements sorted by key. */
export function parseLabelRequirements(text: string): LabelParseResult<LabelRequirement[]> {
  try {
    return { ok: true, value: parseRequirements(text).sort(byLabelKey) };
  } catch (err) {
    if (err instanceof ParseFailure) return { ok: false, message: err.message };
    throw err;
  }
}

export function byLabelKey(a: LabelRequirement, b: LabelRequirement): number {
  return compareGoStrings(a.key, b.key);
}
