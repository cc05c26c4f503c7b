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

/** The event as the host sends it (the JSON form of `hookd hooks test --event`). */
function eventJson(scope) {
  return JSON.stringify({
    client: { id: "c1", name: "reporting", tenant: "acme", metadata: { tier: "gold" } },
    scope,
    audience: "https://api/",
    context: {
      secrets: { API_KEY: "s3cret" },
      request: { ip: "203.0.113.7", hostname: "auth.example", method: "POST", user_agent: "curl" },
      requested_scopes: ["read"],
      resource_server: { identifier: "https://api/", name: "API" },
      tenant: "acme",
    },
  });
}

/** Runs a hook module's exchange and returns its parsed answer, awaiting a promise. */
async function run(userModule, ...scopeArgument) {
  const scope = scopeArgument.length > 0 ? scopeArgument[0] : ["read", "write"];
  const answer = await createExchange(userModule)(eventJson(scope));
  assert.equal(typeof answer, "string");
  return JSON.parse(answer);
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
  const answer = createExchange(hook(seed))(eventJson(["read"]));
  assert.deepEqual(JSON.parse(answer), {
    changes: { scope: ["read", "extra"], claims: { "https://foo.com/claim": "bar" } },
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
    null,
  );
  assert.equal(seen, undefined);
  assert.deepEqual(result.changes, { scope: [], claims: { "https://x/": 1 } });
});

test("cb() changes nothing", async () => {
  assert.deepEqual((await run(hook((c, s, a, ctx, cb) => cb()))).changes, { scope: null, claims: {} });
});

test("cb errors map to Auth0's codes", async () => {
  const cases = [
    [new InvalidScopeError("s"), "invalid_scope", "s"],
    [new InvalidRequestError("r"), "invalid_request", "r"],
    [new ServerError("e"), "server_error", "e"],
    [new Error("plain"), "server_error", "plain"],
    ["a string", "server_error", "a string"],
  ];
  for (const [error, code, description] of cases) {
    const result = await run(hook((c, s, a, ctx, cb) => cb(error)));
    assert.deepEqual(result, { deny: { code, description } });
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
  assert.match(thrown.fail, /^TypeError: boom/);
  assert.doesNotMatch(thrown.fail, /runHook/);

  const rejected = await run(hook(async () => Promise.reject(new RangeError("later"))));
  assert.match(rejected.fail, /^RangeError: later/);

  const scoped = await run(
    hook(() => {
      throw new InvalidScopeError("nope");
    }),
  );
  assert.deepEqual(scoped, { deny: { code: "invalid_scope", description: "nope" } });
});

test("cb after an await or a timer works; the first cb wins", async () => {
  const later = await run(
    hook((c, scope, a, ctx, cb) => {
      setTimeout(() => cb(null, { scope: ["late"] }), 1);
    }),
  );
  assert.deepEqual(later.changes, { scope: ["late"], claims: {} });
  const twice = await run(
    hook((c, s, a, ctx, cb) => {
      cb(null, { scope: ["first"] });
      cb(new Error("second"));
    }),
  );
  assert.deepEqual(twice.changes, { scope: ["first"], claims: {} });
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
    assert.equal(typeof result.fail, "string", JSON.stringify(result));
    assert.match(result.fail, message);
  }
});

test("claims travel as JSON values; values JSON leaves out are dropped", async () => {
  const token = JSON.parse('{"__proto__": "a claim like any other"}');
  token["https://x/obj"] = { tiers: ["gold", 2], nested: { ok: true } };
  token["https://x/none"] = undefined;
  token["https://x/fn"] = () => 1;
  const result = await run(hook((c, s, a, ctx, cb) => cb(null, token)));
  assert.deepEqual(
    result.changes.claims,
    JSON.parse(
      '{"__proto__": "a claim like any other", "https://x/obj": {"tiers": ["gold", 2], "nested": {"ok": true}}}',
    ),
  );
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
  assert.deepEqual(result.changes, {
    scope: ["read", "extra"],
    claims: { "https://x/tier": "gold" },
  });
});

test("an action that changes no scope leaves it alone; deny wins", async () => {
  assert.deepEqual((await run(action(async () => {}))).changes, { scope: null, claims: {} });
  const denied = await run(
    action(async (event, api) => {
      api.access.deny("invalid_request", "no");
      throw new Error("after deny");
    }),
  );
  assert.deepEqual(denied, { deny: { code: "invalid_request", description: "no" } });
  const badCode = await run(action(async (event, api) => api.access.deny("nope", "x")));
  assert.match(badCode.fail, /code must be "invalid_scope"/);
  const cache = await run(action(async (event, api) => api.cache.get("k")));
  assert.match(cache.fail, /api.cache is not available/);
});

test("shapes are detected from CommonJS and ES module exports", () => {
  assert.equal(detectShape({ default: () => {} }).shape, "hooks");
  assert.equal(detectShape({ onExecuteCredentialsExchange: async () => {} }).shape, "actions");
  assert.equal(detectShape({ default: { onExecuteCredentialsExchange: () => {} } }).shape, "actions");
  assert.equal(detectShape({ default: { hello: 1 } }), undefined);
  assert.throws(() => createExchange({}), { message: MISSING_EXPORT_MESSAGE });
});
