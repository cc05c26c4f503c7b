// @ts-check
/** @type {import("hookd-js").OnExecuteCredentialsExchange} */
exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim("https://foo.com/claim", event.client.metadata.tier);
  if (event.resource_server.identifier === "x") api.access.deny("invalid_scope", "no");
  api.transaction.addTargetScope("extra");
};
