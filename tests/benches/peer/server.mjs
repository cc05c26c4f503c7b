// node-oidc-provider as hookd's peer in the side-by-side token benchmark: one client
// (client_secret_post, client_credentials only), the Auth0-style `audience` parameter mapped
// onto a resource indicator, JWT access tokens signed with PEER_ALG (RS256 or ES256, a key made
// at start), and the seed hook's claim added by `extraTokenClaims`. Listens on 127.0.0.1:PEER_PORT
// and prints "listening" once it does.
import * as crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const alg = process.env.PEER_ALG ?? 'RS256';
const audience = process.env.PEER_AUDIENCE;
const clientId = process.env.PEER_CLIENT_ID;
const clientSecret = process.env.PEER_CLIENT_SECRET;

const { privateKey } = alg === 'ES256'
  ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `peer-${alg}` };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    // The default for JWT access tokens of a resource server that names no key.
    id_token_signed_response_alg: alg,
  }],
  jwks: { keys: [jwk] },
  // Auth0's path, as hookd serves it: both answer the same request.
  routes: { token: '/oauth/token' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The token endpoint keeps only its grant's parameters; `audience` is read from the body.
      defaultResource: (ctx) => ctx.oidc.body?.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== audience) {
          throw new Error('unknown resource');
        }
        return {
          scope: 'read',
          audience: resource,
          accessTokenTTL: 86400,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
  extraTokenClaims: () => ({ 'https://foo.com/claim': 'bar' }),
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log('listening');
});
