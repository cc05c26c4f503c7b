// Refuses tokens for APIs outside an allow-list with `invalid_request` (HTTP 400), and for
// clients without a `tier` with `invalid_scope`; everything else passes unchanged.

const ALLOWED_AUDIENCES = ['https://api.example.com/', 'https://billing.example.com/'];

/** @type {import("hookd-js").CredentialsExchangeHook} */
module.exports = function (client, scope, audience, context, cb) {
  if (!ALLOWED_AUDIENCES.includes(audience)) {
    console.log(`denied ${client.id} for audience ${audience}`);
    return cb(new InvalidRequestError(`tokens for ${audience} are not issued to machine clients`));
  }
  if (!client.metadata.tier) {
    return cb(new InvalidScopeError('clients without a tier get no scopes'));
  }
  cb(null, { scope: scope });
};
