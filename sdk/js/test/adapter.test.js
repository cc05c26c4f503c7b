// The adapter's semantics, run directly in Node (the end-to-end tests in tests/all/js.rs run
// the same code inside real components through the token endpoint).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createExchange, detectShape, MISSING_EXPORT_MESSAGE } from "../src/runtime/adapter.js";
import {
  installGlobals,
  InvalidRequestError,
  InvalidScopeError,
  ServerError,
} from "../src/runtime/errors.js";

installGlobals();

const client = { id: "c1", name: "reporting", tenant: "acme", metadata: [["tier", "gold"]] };
const context = {
  secrets: [["API_KEY", "s3cret"]],
  request: { ip: "203.0.113.7", hostname: "auth.example", method: "POST", userAgent: "curl" },
  requestedScopes: ["read"],
  resourceServer: { identifier: "https://api/", name: "API" },
  tenant: "acme",
};

/** Runs a hook module's exchange and returns `{ok}` or `{err}`, awaiting a promise. */
async function run(userModule, ...scopeArgument) {
  const scope = scopeArgument.length > 0 ? scopeArgument[0] : ["read", "write"];
  const exchange = createExchange(userModule);
  try {
    return { ok: await exchange(client, scope, "https://api/", context) };
  } catch (err) {
    return { err };
  }
}

const hook = (fn) => ({ default: fn });
const action = (fn) => ({ default: { onExecuteCredentialsExchange: fn } });

test("the seed hook, verbatim, adds its claim and the extra scope synchronously", () => {
  const seed = function (client, scope, audience, context, cb) {
    var access_token = {};
    access_token["https://foo.com/claim"] = "bar";
    access_token.scope = scope;
    access_token.scope.push("extra");
    cb(null, access_token);
  };
  const result = createExchange(hook(seed))(client, ["read"], "https://api/", context);
  assert.deepEqual(result, {
    scope: ["read", "extra"],
    claims: [{ name: "https://foo.com/claim", value: '"bar"' }],
  });
});

test("hooks get Auth0's arguments", async () => {
  let seen;
  await run(
    hook((c, scope, audience, ctx, cb) => {
      seen = { c, scope, audience, ctx };
      cb();
    }),
  );
  assert.deepEqual(seen.c, { id: "c1", name: "reporting", tenant: "acme", metadata: { tier: "gold" } });
  assert.deepEqual(seen.scope, ["read", "write"]);
  assert.equal(seen.audience, "https://api/");
  assert.deepEqual(seen.ctx.webtask.secrets, { API_KEY: "s3cret" });
  assert.equal(seen.ctx.request.user_agent, "curl");
});

test("a hook with no scope gets undefined, and leaving scope out clears it", async () => {
  let seen = "unset";
  const result = await run(
    hook((c, scope, a, ctx, cb) => {
      seen = scope;
      cb(null, { "https://x/": 1 });
    }),
    undefined,
  );
  assert.equal(seen, undefined);
  assert.deepEqual(result.ok, { scope: [], claims: [{ name: "https://x/", value: "1" }] });
});

test("cb() changes nothing", async () => {
  assert.deepEqual((await run(hook((c, s, a, ctx, cb) => cb()))).ok, { scope: undefined, claims: [] });
});

test("cb errors map to Auth0's codes", async () => {
  const cases = [
    [new InvalidScopeError("s"), "invalid-scope", "s"],
    [new InvalidRequestError("r"), "invalid-request", "r"],
    [new ServerError("e"), "server-error", "e"],
    [new Error("plain"), "server-error", "plain"],
    ["a string", "server-error", "a string"],
  ];
  for (const [error, code, description] of cases) {
    const result = await run(hook((c, s, a, ctx, cb) => cb(error)));
    assert.deepEqual(result.err, { tag: "deny", val: { code, description } });
  }
});

test("the globals keep their Auth0 names", () => {
  assert.equal(globalThis.InvalidScopeError.name, "InvalidScopeError");
  assert.equal(new globalThis.InvalidRequestError("x").name, "InvalidRequestError");
  assert.equal(new globalThis.ServerError("x").code, "server_error");
});

test("exceptions are failures with the message, and Auth0 errors thrown are denials", async () => {
  const thrown = await run(
    hook(() => {
      throw new TypeError("boom");
    }),
  );
  assert.equal(thrown.err.tag, "fail");
  assert.match(thrown.err.val, /^TypeError: boom/);
  assert.doesNotMatch(thrown.err.val, /runHook/);

  const rejected = await run(hook(async () => Promise.reject(new RangeError("later"))));
  assert.equal(rejected.err.tag, "fail");
  assert.match(rejected.err.val, /^RangeError: later/);

  const scoped = await run(
    hook(() => {
      throw new InvalidScopeError("nope");
    }),
  );
  assert.deepEqual(scoped.err, { tag: "deny", val: { code: "invalid-scope", description: "nope" } });
});

test("cb after an await or a timer works; the first cb wins", async () => {
  const later = await run(
    hook((c, scope, a, ctx, cb) => {
      setTimeout(() => cb(null, { scope: ["late"] }), 1);
    }),
  );
  assert.deepEqual(later.ok, { scope: ["late"], claims: [] });
  const twice = await run(
    hook((c, s, a, ctx, cb) => {
      cb(null, { scope: ["first"] });
      cb(new Error("second"));
    }),
  );
  assert.deepEqual(twice.ok, { scope: ["first"], claims: [] });
});

test("invalid output is a failure, never coerced", async () => {
  const cases = [
    [{ scope: "read" }, /access_token.scope must be an array of strings, got string "read"/],
    [{ scope: ["a", 2] }, /item 1 is number 2/],
    ["token", /must be an object/],
    [[1], /got an array/],
    [{ big: 1n }, /claim "big" cannot be written as JSON/],
  ];
  for (const [token, message] of cases) {
    const result = await run(hook((c, s, a, ctx, cb) => cb(null, token)));
    assert.equal(result.err?.tag, "fail", JSON.stringify(result));
    assert.match(result.err.val, message);
  }
});

test("actions get Auth0's event and api", async () => {
  let seen;
  const result = await run(
    action(async (event, api) => {
      seen = event;
      api.accessToken.setCustomClaim("https://x/tier", event.client.metadata.tier);
      api.transaction.addTargetScope("extra");
      api.transaction.removeTargetScope("write");
    }),
  );
  assert.equal(seen.client.client_id, "c1");
  assert.equal(seen.resource_server.identifier, "https://api/");
  assert.equal(seen.secrets.API_KEY, "s3cret");
  assert.equal(seen.tenant.id, "acme");
  assert.deepEqual(seen.transaction.requested_scopes, ["read"]);
  assert.deepEqual(seen.accessToken.scope, ["read", "write"]);
  assert.deepEqual(result.ok, {
    scope: ["read", "extra"],
    claims: [{ name: "https://x/tier", value: '"gold"' }],
  });
});

test("an action that changes no scope leaves it alone; deny wins", async () => {
  assert.deepEqual((await run(action(async () => {}))).ok, { scope: undefined, claims: [] });
  const denied = await run(
    action(async (event, api) => {
      api.access.deny("invalid_request", "no");
      throw new Error("after deny");
    }),
  );
  assert.deepEqual(denied.err, { tag: "deny", val: { code: "invalid-request", description: "no" } });
  const badCode = await run(action(async (event, api) => api.access.deny("nope", "x")));
  assert.equal(badCode.err.tag, "fail");
  assert.match(badCode.err.val, /code must be "invalid_scope"/);
  const cache = await run(action(async (event, api) => api.cache.get("k")));
  assert.match(cache.err.val, /api.cache is not available/);
});

test("shapes are detected from CommonJS and ES module exports", () => {
  assert.equal(detectShape({ default: () => {} }).shape, "hooks");
  assert.equal(detectShape({ onExecuteCredentialsExchange: async () => {} }).shape, "actions");
  assert.equal(detectShape({ default: { onExecuteCredentialsExchange: () => {} } }).shape, "actions");
  assert.equal(detectShape({ default: { hello: 1 } }), undefined);
  assert.throws(() => createExchange({}), { message: MISSING_EXPORT_MESSAGE });
});
