// A real OpenID provider for the portal's OIDC tests: node's certified oidc-provider on 127.0.0.1.
//
//   node provider.mjs <settings.json>
//
// settings.json (written by tests/support/oidc.py): {"install_dir", "client_id", "client_secret_file",
// "redirect_uris", "post_logout_redirect_uris", "groups"}; install_dir is where tools/setup.sh installed this
// package's lockfile (outside the clone); groups maps a login to the groups its `groups` claim lists (scope
// `groups`, as Okta or Authentik release it).
// The provider listens on a free loopback port and prints one JSON line, {"issuer": ...}, once it answers.
// Sign-in is oidc-provider's own development interaction pages (any login, any password): the login
// typed becomes the account, and its `email` claim when it is an address. Authorization code flow only,
// PKCE (S256) required, the client authenticates with its secret (client_secret_basic). RP-initiated logout
// (end_session_endpoint) is on, with oidc-provider's own confirmation page.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const installed = createRequire(join(settings.install_dir, 'package.json')).resolve('oidc-provider');
const { default: Provider } = await import(pathToFileURL(installed).href);
const clientSecret = readFileSync(settings.client_secret_file, 'utf8').trim();

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: settings.client_id,
      client_secret: clientSecret,
      redirect_uris: settings.redirect_uris,
      post_logout_redirect_uris: settings.post_logout_redirect_uris ?? [],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          const groups = settings.groups?.[sub];
          const address = sub.includes('@') ? { email: sub, email_verified: true } : {};
          return { sub, ...address, ...(groups ? { groups } : {}) };
        },
      };
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
