// @ts-check
/** @type {import("hookd-js").CredentialsExchangeHook} */
module.exports = function (client, scope, audience, context, cb) {
  const tier = client.metadata.tier;
  if (!scope) return cb(new InvalidScopeError("no scope"));
  cb(null, { scope: [...scope, "extra"], "https://foo.com/tier": tier, "k": context.webtask.secrets.KEY });
};
