// A hook with an npm dependency, as Auth0 hooks declared `dependencies`: `ms` is installed
// next to the hook (package.json + package-lock.json) and bundled into the component at
// build time, so nothing is fetched at run time.
const ms = require('ms');

/** @type {import("hookd-js").CredentialsExchangeHook} */
module.exports = function (client, scope, audience, context, cb) {
  const refreshAfter = client.metadata.refresh_after || '2h';
  cb(null, {
    scope: scope,
    'https://hookd.example.com/refresh_after_ms': ms(refreshAfter),
  });
};
