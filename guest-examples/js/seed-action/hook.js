// The seed hook's logic as an Auth0 Action for the Client Credentials Exchange trigger:
// claim `https://foo.com/claim` = "bar" and the scope `extra` added to the granted ones.

/** @type {import("hookd-js").OnExecuteCredentialsExchange} */
exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://foo.com/claim', 'bar');
  api.transaction.addTargetScope('extra');
};
