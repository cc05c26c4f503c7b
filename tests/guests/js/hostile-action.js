// A misbehaving Auth0 Action for hookd's tests: what it does depends on the audience
// (`https://<case>.test/`).
const cases = {
  // Echoes the event (a copy: the claim would otherwise contain itself, through
  // event.accessToken.customClaims).
  "event": async (event, api) => {
    api.accessToken.setCustomClaim("https://hookd.test/event", JSON.parse(JSON.stringify(event)));
  },
  "throw": async () => {
    throw new Error("action failed");
  },
  "deny-after-await": async (event, api) => {
    await Promise.resolve();
    api.access.deny("invalid_scope", `no tokens for ${event.client.client_id}`);
  },
  "deny-server-error": async (event, api) => {
    api.access.deny("server_error", "upstream unavailable");
  },
  "bad-deny-code": async (event, api) => {
    api.access.deny("access_denied", "not a hook code");
  },
  "cache": async (event, api) => {
    api.cache.set("k", "v");
  },
  "never-settles": () => new Promise(() => {}),
  "set-target-scopes": async (event, api) => {
    api.transaction.setTargetScopes(["read:reports", "admin"]);
  },
  "bad-target-scopes": async (event, api) => {
    api.transaction.setTargetScopes("admin");
  },
  "sync": (event, api) => {
    api.accessToken.setCustomClaim("https://hookd.test/sync", true);
  },
};

exports.onExecuteCredentialsExchange = async (event, api) => {
  const name = new URL(event.resource_server.identifier).hostname.replace(/\.test$/, "");
  const run = cases[name];
  if (run === undefined) {
    return api.access.deny("invalid_request", `no case ${name}`);
  }
  return run(event, api);
};
