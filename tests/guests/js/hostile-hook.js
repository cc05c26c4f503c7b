// A misbehaving Auth0 Hook for hookd's tests: what it does depends on the audience
// (`https://<case>.test/`). It covers every way a JavaScript hook can end besides success.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const cases = {
  // Succeeds after a timer: the asynchronous path.
  "async-cb": (client, scope, audience, context, cb) => {
    setTimeout(() => cb(null, { scope, "https://hookd.test/async": true }), 5);
  },
  // An async function that awaits, then calls cb.
  "await-cb": async (client, scope, audience, context, cb) => {
    await sleep(1);
    cb(null, { scope, "https://hookd.test/awaited": 1 });
  },
  // Never calls cb: ends by the host's time limit.
  "never-cb": () => {},
  "throw-type-error": (client) => client.nothing.here,
  "reject": async () => {
    await sleep(1);
    throw new RangeError("async failure");
  },
  "throw-string": () => {
    throw "a bare string";
  },
  "cb-error": (client, scope, audience, context, cb) => cb(new Error("plain error")),
  "cb-server-error": (client, scope, audience, context, cb) => cb(new ServerError("server says no")),
  "cb-invalid-scope": (client, scope, audience, context, cb) =>
    cb(new InvalidScopeError("scope not allowed")),
  "cb-invalid-request": (client, scope, audience, context, cb) =>
    cb(new InvalidRequestError("bad request")),
  "throw-invalid-scope": () => {
    throw new InvalidScopeError("thrown scope error");
  },
  "cb-twice": (client, scope, audience, context, cb) => {
    cb(null, { scope: ["first"] });
    cb(null, { scope: ["second"] });
  },
  "scope-string": (client, scope, audience, context, cb) => cb(null, { scope: "read" }),
  "scope-number-item": (client, scope, audience, context, cb) => cb(null, { scope: ["a", 1] }),
  "token-string": (client, scope, audience, context, cb) => cb(null, "token"),
  "bigint-claim": (client, scope, audience, context, cb) =>
    cb(null, { scope, "https://hookd.test/big": 10n }),
  "no-scope": (client, scope, audience, context, cb) => cb(null, { "https://hookd.test/x": 1 }),
  "no-changes": (client, scope, audience, context, cb) => cb(),
  "loop": () => {
    for (;;) {}
  },
  "memory": () => {
    const hoard = [];
    for (;;) {
      hoard.push(new Uint8Array(1 << 20));
    }
  },
  "recursion": () => {
    const down = (n) => down(n + 1) + 1;
    return down(0);
  },
  "log": (client, scope, audience, context, cb) => {
    console.log("log line", 1);
    console.error("error line", { client: client.id });
    cb(null, { scope });
  },
  // There is no network: fetch exists, as in Node, but rejects.
  "fetch": async (client, scope, audience, context, cb) => {
    await fetch("http://127.0.0.1:9/");
    cb(null, { scope });
  },
  "environment": (client, scope, audience, context, cb) =>
    cb(null, {
      scope,
      "https://hookd.test/now": Date.now(),
      "https://hookd.test/random": Math.random(),
      "https://hookd.test/fetch": typeof fetch,
      "https://hookd.test/input": { client, scope, audience, context },
    }),
};

module.exports = function (client, scope, audience, context, cb) {
  const name = new URL(audience).hostname.replace(/\.test$/, "");
  const run = cases[name];
  if (run === undefined) {
    return cb(new InvalidRequestError(`no case ${name}`));
  }
  return run(client, scope, audience, context, cb);
};
