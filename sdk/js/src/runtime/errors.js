// The error classes Auth0's webtask runtime gave Client Credentials Exchange hooks as globals.
// `cb(new InvalidScopeError(msg))` makes the token endpoint answer HTTP 400 `invalid_scope`,
// `InvalidRequestError` HTTP 400 `invalid_request`, `ServerError` (like a plain `Error`)
// HTTP 500 `server_error`, each with `msg` as the `error_description`.
//
// Names are spelled out as strings: a bundler renames these classes when hook code mentions
// the globals of the same name, and `name` must still read `InvalidScopeError`.

/** Base class of the three Auth0 hook errors; `code` is the OAuth 2.0 error code. */
export class HookDenialError extends Error {
  constructor(message, code, name = "HookDenialError") {
    super(message === undefined ? "" : String(message));
    this.name = name;
    this.code = code;
  }
}

/** Names a class as its global is named, whatever the bundler called the binding. */
function named(cls, name) {
  Object.defineProperty(cls, "name", { value: name });
  return cls;
}

/** HTTP 400 `invalid_scope`. */
export const InvalidScopeError = named(
  class extends HookDenialError {
    constructor(message) {
      super(message, "invalid_scope", "InvalidScopeError");
    }
  },
  "InvalidScopeError",
);

/** HTTP 400 `invalid_request`. */
export const InvalidRequestError = named(
  class extends HookDenialError {
    constructor(message) {
      super(message, "invalid_request", "InvalidRequestError");
    }
  },
  "InvalidRequestError",
);

/** HTTP 500 `server_error`. */
export const ServerError = named(
  class extends HookDenialError {
    constructor(message) {
      super(message, "server_error", "ServerError");
    }
  },
  "ServerError",
);

/** Puts the classes where Auth0 hook code expects them: on the global object. */
export function installGlobals(target = globalThis) {
  const globals = {
    InvalidScopeError: InvalidScopeError,
    InvalidRequestError: InvalidRequestError,
    ServerError: ServerError,
  };
  for (const [name, value] of Object.entries(globals)) {
    Object.defineProperty(target, name, {
      value,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
}

/**
 * Replaces `fetch`, which the JavaScript engine defines but which would abort the component
 * (hooks are built without `wasi:http`): calling it rejects with a readable error instead.
 */
export function installNoNetworkFetch(target = globalThis) {
  Object.defineProperty(target, "fetch", {
    value: async function fetch() {
      throw new TypeError(
        "fetch is not available in hookd hooks: the sandbox has no network access",
      );
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}
