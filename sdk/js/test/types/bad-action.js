// @ts-check
/** @type {import("hookd-js").OnExecuteCredentialsExchange} */
exports.onExecuteCredentialsExchange = async (event, api) => {
  api.access.deny("nope", "no");
  event.client.id;
};
