// The adapter between hookd's `credentials-exchange-json` world (wit/hooks.wit) and the two
// shapes of Auth0 code: Hooks (`module.exports = function (client, scope, audience, context,
// cb)`) and Actions (`exports.onExecuteCredentialsExchange = async (event, api) => {}`).
//
// The host passes the event as JSON text, parsed here by the engine's native `JSON.parse`;
// the typed world would lift every record field in interpreted binding code instead, which
// costs a fresh instance about twice as much. Everything a hook does ends in exactly one of
// three answers, returned as JSON text:
//   - `{ changes: { scope: string[] | null, claims: { [name]: any JSON value } } }`;
//   - `{ deny: { code, description } }`: a deliberate refusal, which the client sees;
//   - `{ fail: message }`: a failure (an uncaught exception, invalid output), which only the
//     hook log sees.
// The host validates the changes again (restricted claims, sizes, scope tokens).
//
// The per-call paths use plain indexed loops and `Object.keys` rather than spreads,
// destructuring, `for...of`, `Object.entries` or `Object.fromEntries`: every call runs in a
// fresh instance, where the engine sets up each of those built-ins again on first use, and
// that set-up measured ~0.3-0.5 M fuel apiece, more than a small hook's own work.

import { HookDenialError } from "./errors.js";

/** The OAuth 2.0 error codes a hook may deny with. */
const DENY_CODES = new Set(["invalid_scope", "invalid_request", "server_error"]);

/**
 * How long an unfinished asynchronous hook keeps the event loop alive. It is longer than the
 * host's longest time limit (20 s), so a hook that never calls `cb` (or never settles) ends
 * by the host's time limit, as Auth0's webtask timeout ended it, and not by an idle event loop.
 */
const KEEP_ALIVE_MS = 60_000;

/** A failure the adapter itself detected in the hook's output, with a message for its author. */
export class HookOutputError extends Error {
  constructor(message) {
    super(message);
    this.name = "HookOutputError";
  }
}

/**
 * Finds the hook in a module namespace: an Actions handler (`onExecuteCredentialsExchange`,
 * as a named export or on `module.exports`) or a Hooks function (`module.exports` or the
 * default export). Returns `undefined` when there is neither.
 */
export function detectShape(userModule) {
  const exported = userModule?.default;
  const handler =
    userModule?.onExecuteCredentialsExchange ?? exported?.onExecuteCredentialsExchange;
  if (typeof handler === "function") {
    return { shape: "actions", handler };
  }
  if (typeof exported === "function") {
    return { shape: "hooks", handler: exported };
  }
  return undefined;
}

/** The message a build shows when a module exports no hook. */
export const MISSING_EXPORT_MESSAGE =
  "the module exports no hook: expected an Auth0 Hook " +
  "(`module.exports = function (client, scope, audience, context, cb) { ... }`) " +
  "or an Auth0 Action (`exports.onExecuteCredentialsExchange = async (event, api) => { ... }`)";

/**
 * Builds the world's `exchange-json` export for a hook module: event JSON text in, answer
 * JSON text out (or a promise of it). Throws when the module exports no hook.
 */
export function createExchange(userModule) {
  const found = detectShape(userModule);
  if (found === undefined) {
    throw new Error(MISSING_EXPORT_MESSAGE);
  }
  const run = found.shape === "actions" ? runAction : runHook;
  return (eventJson) => {
    let event;
    try {
      event = JSON.parse(eventJson);
    } catch (error) {
      return encode(fail(`the event is not JSON: ${error?.message ?? error}`));
    }
    return run(found.handler, event);
  };
}

// ---- answers -----------------------------------------------------------------------------

const fail = (message) => ({ fail: message });
const deny = (code, description) => ({ deny: { code, description } });

/** Stack frames of the adapter and the component glue, which callers of a hook never need. */
const ADAPTER_FRAME = /^(at )?(runHook|runAction|createExchange|export_exchange|waitForAnswer)\b/;

/** The stack frames of an error up to the adapter's own, one per line. */
function hookFrames(error, head) {
  const frames = [];
  for (const line of typeof error.stack === "string" ? error.stack.split("\n") : []) {
    const frame = line.trim();
    if (frame === "" || frame === head) {
      continue;
    }
    if (ADAPTER_FRAME.test(frame)) {
      break;
    }
    frames.push(frame);
  }
  return frames;
}

/** A readable account of a thrown value: name, message and the hook's stack frames. */
export function describeThrown(value) {
  if (value instanceof HookOutputError) {
    return value.message;
  }
  if (value instanceof Error) {
    const head = `${value.name}: ${value.message}`;
    return [head, ...hookFrames(value, head).map((frame) => `  ${frame}`)].join("\n");
  }
  return `a non-Error value was thrown: ${describeValue(value)}`;
}

function describeValue(value) {
  if (typeof value === "string") {
    return JSON.stringify(value);
  }
  try {
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function kindOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${describeValue(value)}`;
}

/** An Auth0 hook error (or anything carrying one of the three codes) as a denial. */
function denialOf(error) {
  if (!DENY_CODES.has(error?.code)) {
    return undefined;
  }
  return deny(error.code, error.message === undefined ? "" : String(error.message));
}

/**
 * What `cb(err)` means, as Auth0 documented it: `InvalidScopeError` and `InvalidRequestError`
 * give HTTP 400 with their code, `ServerError`, a plain `Error` or any other value HTTP 500
 * `server_error`; the message is the `error_description`.
 */
function denialOfCallbackError(error) {
  const known = denialOf(error);
  if (known !== undefined) {
    return known;
  }
  const description = error instanceof Error ? error.message : String(error);
  return deny("server_error", description);
}

/**
 * What a thrown exception or a rejected promise means: Auth0's own error classes are a
 * deliberate denial; anything else is a failure of the hook, reported in the hook log only.
 */
function answerOfThrown(value) {
  if (value instanceof HookDenialError) {
    return denialOf(value);
  }
  return fail(describeThrown(value));
}

// ---- output ------------------------------------------------------------------------------

function scopeList(value, what) {
  if (!Array.isArray(value)) {
    throw new HookOutputError(`${what} must be an array of strings, got ${kindOf(value)}`);
  }
  for (let index = 0; index < value.length; index++) {
    if (typeof value[index] !== "string") {
      throw new HookOutputError(
        `${what} must be an array of strings, but item ${index} is ${kindOf(value[index])}`,
      );
    }
  }
  return value.slice();
}

/** Claims from parallel lists of names and values, in order, as one object. */
function claimsOf(names, values) {
  // No prototype: a claim named `__proto__` is a claim like any other.
  const claims = Object.create(null);
  for (let index = 0; index < names.length; index++) {
    claims[names[index]] = values[index];
  }
  return claims;
}

/** An answer as changes: `scope` replaces the token's scopes (`undefined` keeps them). */
function changes(scope, claims) {
  return { changes: { scope: scope === undefined ? null : scope, claims } };
}

/**
 * The changes an Auth0 Hook hands to `cb(null, access_token)`: `access_token.scope` replaces
 * the token's scope, and leaving it out clears the scope (Auth0's documented behaviour);
 * every other property is a custom claim. `cb()` or `cb(null)` changes nothing.
 */
export function changesOfAccessToken(accessToken) {
  if (accessToken === undefined || accessToken === null) {
    return changes(undefined, {});
  }
  if (typeof accessToken !== "object" || Array.isArray(accessToken)) {
    throw new HookOutputError(
      `cb's second argument must be an object of claims (and scope), got ${kindOf(accessToken)}`,
    );
  }
  const names = [];
  const values = [];
  const keys = Object.keys(accessToken);
  for (let index = 0; index < keys.length; index++) {
    if (keys[index] !== "scope") {
      names.push(keys[index]);
      values.push(accessToken[keys[index]]);
    }
  }
  const scope = accessToken.scope;
  return changes(
    scope === undefined ? [] : scopeList(scope, "access_token.scope"),
    claimsOf(names, values),
  );
}

/** Names the claim JSON cannot represent (a BigInt, a cycle), for the failure's message. */
function unencodableClaim(claims, error) {
  const names = Object.keys(claims);
  for (let index = 0; index < names.length; index++) {
    try {
      JSON.stringify(claims[names[index]]);
    } catch (claimError) {
      return new HookOutputError(
        `claim ${JSON.stringify(names[index])} cannot be written as JSON: ${claimError?.message ?? claimError}`,
      );
    }
  }
  return error;
}

/** An answer as the export's JSON text. Claims JSON leaves out (functions, `undefined`) are dropped. */
function encode(answer) {
  try {
    return JSON.stringify(answer);
  } catch (error) {
    const claims = answer.changes?.claims;
    const reason = claims === undefined ? error : unencodableClaim(claims, error);
    return JSON.stringify(fail(describeThrown(reason)));
  }
}

// ---- the two shapes ------------------------------------------------------------------------

/**
 * Resolves with the answer once `settle` is called; keeps the event loop alive meanwhile,
 * so an unfinished hook ends by the host's time limit.
 */
function waitForAnswer(register) {
  return new Promise((resolve) => {
    const keepAlive = setTimeout(() => {}, KEEP_ALIVE_MS);
    register((answer) => {
      clearTimeout(keepAlive);
      resolve(answer);
    });
  });
}

/** Runs an Auth0 Hook: `function (client, scope, audience, context, cb)`. */
function runHook(hook, event) {
  let answer;
  let wake;
  const settle = (next) => {
    if (answer === undefined) {
      answer = next;
      wake?.(next);
    }
  };
  const settleThrown = (value) => settle(answerOfThrown(value));
  const cb = (error, accessToken) => {
    try {
      settle(error ? denialOfCallbackError(error) : changesOfAccessToken(accessToken));
    } catch (thrown) {
      settleThrown(thrown);
    }
  };

  // The event's `client` ({ id, name, tenant, metadata }) is already Auth0's.
  const context = event.context;
  const hookContext = { webtask: { secrets: context.secrets }, request: context.request };
  const scope = event.scope === null ? undefined : event.scope;
  try {
    const returned = hook(event.client, scope, event.audience, hookContext, cb);
    if (returned !== null && typeof returned?.then === "function") {
      returned.then(undefined, (reason) => settleThrown(reason));
    }
  } catch (thrown) {
    settleThrown(thrown);
  }
  // The fast path: `cb` ran synchronously, so no promise and no timer are needed.
  if (answer !== undefined) {
    return encode(answer);
  }
  return waitForAnswer((resolve) => {
    wake = resolve;
  }).then(encode);
}

/** Runs an Auth0 Action: `onExecuteCredentialsExchange(event, api)`. */
function runAction(handler, hookEvent) {
  const { client, context } = hookEvent;
  const grantedScopes = hookEvent.scope === null ? [] : hookEvent.scope.slice();
  const customClaims = {};
  const claimNames = [];
  const claimValues = [];
  let targetScopes;
  let denial;

  const scopeArgument = (value, method) => {
    if (typeof value !== "string") {
      throw new TypeError(`api.transaction.${method} takes a scope string, got ${kindOf(value)}`);
    }
    return value;
  };
  const targets = () => {
    targetScopes ??= grantedScopes.slice();
    return targetScopes;
  };

  const event = {
    client: { client_id: client.id, name: client.name, metadata: client.metadata },
    resource_server: { identifier: hookEvent.audience },
    request: context.request,
    secrets: context.secrets,
    tenant: { id: client.tenant },
    transaction: { requested_scopes: context.requested_scopes },
    accessToken: { scope: grantedScopes, customClaims },
  };
  const api = {
    access: {
      deny(code, reason) {
        if (!DENY_CODES.has(code)) {
          throw new TypeError(
            `api.access.deny: code must be "invalid_scope", "invalid_request" or ` +
              `"server_error", got ${kindOf(code)}`,
          );
        }
        denial ??= deny(code, reason === undefined ? "" : String(reason));
        return api;
      },
    },
    accessToken: {
      setCustomClaim(name, value) {
        if (typeof name !== "string" || name === "") {
          throw new TypeError(
            `api.accessToken.setCustomClaim: the claim name must be a non-empty string, got ${kindOf(name)}`,
          );
        }
        const at = claimNames.indexOf(name);
        if (at === -1) {
          claimNames.push(name);
          claimValues.push(value);
        } else {
          claimValues[at] = value;
        }
        customClaims[name] = value;
        return api;
      },
    },
    transaction: {
      addTargetScope(value) {
        const added = scopeArgument(value, "addTargetScope");
        if (targets().indexOf(added) === -1) {
          targets().push(added);
        }
        return api;
      },
      removeTargetScope(value) {
        const removed = scopeArgument(value, "removeTargetScope");
        const kept = [];
        const current = targets();
        for (let index = 0; index < current.length; index++) {
          if (current[index] !== removed) {
            kept.push(current[index]);
          }
        }
        targetScopes = kept;
        return api;
      },
      setTargetScopes(values) {
        targetScopes = scopeList(values, "api.transaction.setTargetScopes's argument");
        return api;
      },
      clearTargetScopes() {
        targetScopes = [];
        return api;
      },
    },
    get cache() {
      throw new Error(
        "api.cache is not available in hookd: every call runs in a fresh sandbox, so " +
          "nothing persists between calls",
      );
    },
  };

  const finish = () =>
    denial !== undefined ? denial : changes(targetScopes, claimsOf(claimNames, claimValues));

  let returned;
  try {
    returned = handler(event, api);
  } catch (thrown) {
    return encode(denial !== undefined ? denial : answerOfThrown(thrown));
  }
  if (returned === null || typeof returned?.then !== "function") {
    return encode(finish());
  }
  return waitForAnswer((resolve) => {
    returned.then(
      () => resolve(finish()),
      (reason) => resolve(denial !== undefined ? denial : answerOfThrown(reason)),
    );
  }).then(encode);
}
