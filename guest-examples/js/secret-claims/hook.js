// Claims from a hook secret and the client's metadata, the way Auth0 hooks read
// `context.webtask.secrets`. Without the secret the hook refuses with `server_error`
// (HTTP 500): a missing secret is the operator's mistake, not the client's.

/** @type {import("hookd-js").CredentialsExchangeHook} */
module.exports = function (client, scope, audience, context, cb) {
  const keyId = context.webtask.secrets.KEY_ID;
  if (!keyId) {
    console.error(`secret KEY_ID is not set; refusing a token for ${client.id}`);
    return cb(new ServerError('the hook is not configured'));
  }
  cb(null, {
    scope: scope,
    'https://hookd.example.com/key_id': keyId,
    'https://hookd.example.com/tier': client.metadata.tier || 'free',
  });
};
