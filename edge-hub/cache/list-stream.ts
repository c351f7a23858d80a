import { Tokenizer, TokenParser, TokenType, type ParsedTokenInfo } from '@streamparser/json';

/** What a LIST answer says of itself besides its items. */
export interface ListEnvelope {
  kind: string | undefined;
  apiVersion: string | undefined;
  resourceVersion: string;
  continue: string;
}

/**
 * Parses a LIST answer as its bytes arrive and hands each item on as soon as
 * it is complete; nothing of an item is kept once handed on, so memory holds
 * one item, never the list (@streamparser/json: no dependencies, a
 * synchronous write() as the recorder's write needs, and with `keepStack:
 * false` it drops what it emitted). write() throws on invalid JSON, and so
 * does `onItem` for an item the caller refuses; end() says whether the
 * document was a list at all: an object without `items` is not an empty one.
 */
export class ListStreamParser {
  readonly #tokenizer = new Tokenizer();
  readonly #parser = new TokenParser({ paths: ['$.items.*', '$.metadata'], keepStack: false });
  /** Nesting of the token being read: 1 inside the list object itself. */
  #depth = 0;
  #expectKey = false;
  #key: string | undefined;
  #afterColon = false;
  #kind: string | undefined;
  #apiVersion: string | undefined;
  #metadata: unknown;
  /** The token `items` held: `[` or `null` make a list. */
  #items: TokenType | undefined;
  #count = 0;

  constructor(onItem: (item: unknown, index: number) => void) {
    this.#parser.onValue = ({ value, stack }) => {
      if (stack.length === 1) this.#metadata = value;
      else onItem(value, this.#count++);
    };
    this.#tokenizer.onToken = (t) => {
      this.#topLevel(t);
      this.#parser.write(t);
    };
  }

  /** Follows the list object's own keys (kind, apiVersion, items) without keeping anything else. */
  #topLevel(t: ParsedTokenInfo): void {
    const top = this.#depth === 1;
    switch (t.token) {
      case TokenType.LEFT_BRACE:
      case TokenType.LEFT_BRACKET:
        if (top && this.#afterColon) this.#value(t.token, undefined);
        this.#depth++;
        if (this.#depth === 1) this.#expectKey = t.token === TokenType.LEFT_BRACE;
        return;
      case TokenType.RIGHT_BRACE:
      case TokenType.RIGHT_BRACKET:
        this.#depth--;
        return;
      case TokenType.COMMA:
        if (top) this.#expectKey = true;
        return;
      case TokenType.COLON:
        if (top) this.#afterColon = true;
        return;
      case TokenType.STRING:
        if (top && this.#expectKey) {
          this.#key = String(t.value);
          this.#expectKey = false;
        } else if (top && this.#afterColon) {
          this.#value(t.token, String(t.value));
        }
        return;
      default:
        if (top && this.#afterColon) this.#value(t.token, undefined);
    }
  }

  #value(token: TokenType, value: string | undefined): void {
    this.#afterColon = false;
    if (this.#key === 'kind') this.#kind = value;
    else if (this.#key === 'apiVersion') this.#apiVersion = value;
    else if (this.#key === 'items') this.#items = token;
  }

  write(chunk: Uint8Array): void {
    this.#tokenizer.write(chunk);
  }

  /** The list's `kind` and `apiVersion`, once read (the apiserver sends them before the items). */
  get kind(): string | undefined {
    return this.#kind;
  }

  get apiVersion(): string | undefined {
    return this.#apiVersion;
  }

  end(): ListEnvelope | Error {
    try {
      this.#tokenizer.end();
    } catch (err) {
      return new Error(`not a complete JSON document: ${String(err)}`);
    }
    // The token parser ends itself when the document's value closes; otherwise it was cut.
    if (!this.#parser.isEnded) return new Error('not a complete JSON document: cut short');
    if (this.#items !== TokenType.LEFT_BRACKET && this.#items !== TokenType.NULL) {
      return new Error('not a list: no items array');
    }
    const metadata = (this.#metadata ?? {}) as { resourceVersion?: unknown; continue?: unknown };
    const text = (v: unknown) => (typeof v === 'string' ? v : '');
    return {
      kind: this.#kind,
      apiVersion: this.#apiVersion,
      resourceVersion: text(metadata.resourceVersion),
      continue: text(metadata.continue),
    };
  }
}
