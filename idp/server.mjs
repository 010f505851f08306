// The telecom hub's development and test OpenID provider: oidc-provider (panva, OpenID
// Certified), configured for what the hub needs and nothing more.
//
// - client credentials is the only grant; access tokens are JWTs for one resource, the hub's
//   API (IDP_AUDIENCE is both the resource indicator and the token's `aud`), with the hub's
//   scopes (IDP_SCOPES);
// - Dynamic Client Registration (RFC 7591) needs the initial access token
//   IDP_INITIAL_ACCESS_TOKEN; registration management (RFC 7592) lets the registrant read and
//   delete its client with the registration access token;
// - the client metadata `partner_id` (set at registration, by the hub only, as only the hub
//   holds the initial access token) becomes the `partner_id` claim of the client's tokens;
// - signing keys are the private JWKs in IDP_JWKS_FILE (the dev stack or the test writes it).
//   SIGHUP re-reads the file: put the new key first (it signs) and the old one after it (still
//   published, so tokens already issued stay valid), and the provider rotates without a restart;
// - clients and registration tokens live in memory, or in IDP_STATE_FILE when it is set (the
//   dev stack sets it, so a restart keeps the partners' clients).
//
// Development only: http on loopback, no TLS. In production the hub uses any OIDC provider
// that speaks RFC 7591 / 7592 (HUB_OIDC_ISSUER).

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const PARTNER_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`idp: ${name} must be set`);
    process.exit(2);
  }
  return value;
}

const issuer = process.env.IDP_ISSUER || 'http://127.0.0.1:8110';
const issuerUrl = new URL(issuer);
if (!LOOPBACK.has(issuerUrl.hostname) || issuerUrl.protocol !== 'http:') {
  console.error(`idp: IDP_ISSUER ${issuer} must be http on a loopback host: development only`);
  process.exit(2);
}
const port = Number(issuerUrl.port || 80);
const jwksFile = required('IDP_JWKS_FILE');
const initialAccessToken = required('IDP_INITIAL_ACCESS_TOKEN');
const audience = process.env.IDP_AUDIENCE || 'urn:telecom-hub:api';
const scopes = required('IDP_SCOPES').split(/[\s,]+/).filter(Boolean);
const accessTokenTTL = Number(process.env.IDP_ACCESS_TOKEN_TTL || 600);
const stateFile = process.env.IDP_STATE_FILE || '';

// --- storage: oidc-provider's adapter contract over one Map, optionally kept in a file ---------

const store = new Map();

function loadState() {
  if (!stateFile || !existsSync(stateFile)) return;
  const now = Date.now() / 1000;
  for (const [key, entry] of Object.entries(JSON.parse(readFileSync(stateFile, 'utf8')))) {
    if (!entry.expiresAt || entry.expiresAt > now) store.set(key, entry);
  }
}

function saveState() {
  if (!stateFile) return;
  const partial = `${stateFile}.part`;
  writeFileSync(partial, JSON.stringify(Object.fromEntries(store)), { mode: 0o600 });
  renameSync(partial, stateFile);
}

class StateAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  live(key) {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt <= Date.now() / 1000) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Math.floor(Date.now() / 1000) + expiresIn : undefined;
    store.set(this.key(id), { payload, expiresAt });
    saveState();
  }

  async find(id) {
    return this.live(this.key(id));
  }

  async findByUid(uid) {
    for (const key of store.keys()) {
      if (key.startsWith(`${this.model}:`) && this.live(key)?.uid === uid) return this.live(key);
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const key of store.keys()) {
      if (key.startsWith(`${this.model}:`) && this.live(key)?.userCode === userCode) {
        return this.live(key);
      }
    }
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
      saveState();
    }
  }

  async destroy(id) {
    store.delete(this.key(id));
    saveState();
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (entry.payload?.grantId === grantId) store.delete(key);
    }
    saveState();
  }
}

// --- the provider ------------------------------------------------------------------------------

function readKeys() {
  const { keys } = JSON.parse(readFileSync(jwksFile, 'utf8'));
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${jwksFile} has no keys`);
  for (const key of keys) {
    if (!key.d || !key.kid) throw new Error(`${jwksFile}: every key needs a private part and a kid`);
    if (key.kty === 'oct') throw new Error(`${jwksFile}: symmetric keys are refused`);
  }
  return keys;
}

function signingAlg(key) {
  if (key.alg) return key.alg;
  return key.kty === 'EC' ? 'ES256' : key.kty === 'OKP' ? 'EdDSA' : 'RS256';
}

function buildProvider() {
  const keys = readKeys();
  const provider = new Provider(issuer, {
    adapter: StateAdapter,
    clients: [],
    jwks: { keys },
    scopes,
    // No cookie is ever set (no interactive login), but the provider wants keys to sign them.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // Never used (no ID tokens without a login) but validated: the alg the keys can sign.
      id_token_signed_response_alg: signingAlg(keys[0]),
    },
    responseTypes: ['none'],
    // A client always proves it holds its secret: no public (`none`) or JWT-assertion clients.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    features: {
      // No interactive login at all: the hub's callers are machines.
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      registration: {
        enabled: true,
        initialAccessToken,
        issueRegistrationAccessToken: true,
      },
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== audience) throw new errors.InvalidTarget();
          return {
            audience,
            scope: scopes.join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL,
            jwt: { sign: { alg: signingAlg(keys[0]) } },
          };
        },
      },
    },
    extraClientMetadata: {
      properties: ['partner_id'],
      validator(ctx, key, value, metadata) {
        if (key !== 'partner_id') return;
        // A client is registered for what it may do: no scope would mean every scope.
        if (!metadata.scope || typeof metadata.scope !== 'string') {
          throw new errors.InvalidClientMetadata('scope is required');
        }
        if (value !== undefined && (typeof value !== 'string' || !PARTNER_ID.test(value))) {
          throw new errors.InvalidClientMetadata('partner_id must be a short identifier');
        }
        const grants = metadata.grant_types || [];
        if (grants.length !== 1 || grants[0] !== 'client_credentials') {
          throw new errors.InvalidClientMetadata('only the client_credentials grant is offered');
        }
      },
    },
    async extraTokenClaims(ctx, token) {
      const client = ctx?.oidc?.client;
      if (client?.partner_id && token.clientId === client.clientId) {
        return { partner_id: client.partner_id };
      }
      return undefined;
    },
    ttl: {
      ClientCredentials: accessTokenTTL,
      AccessToken: accessTokenTTL,
    },
    enabledJWA: {
      // Access tokens are signed asymmetrically only: a resource server holding a shared
      // secret could forge them.
      clientAuthSigningAlgValues: ['ES256', 'PS256', 'RS256', 'EdDSA'],
    },
    renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  // The provider sits behind nothing: the issuer is what it answers on.
  provider.proxy = false;
  return provider;
}

loadState();
let provider = buildProvider();
let handler = provider.callback();

// RFC 7592 read and delete only: an update (PUT) could change a client's partner_id or
// scopes, which only its registration fixed.
const server = createServer((req, res) => {
  if (req.method === 'PUT' && new URL(req.url, issuer).pathname.startsWith('/reg/')) {
    res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, DELETE' });
    res.end(JSON.stringify({
      error: 'invalid_request',
      error_description: 'client metadata cannot be changed: delete the client and register anew',
    }));
    return;
  }
  handler(req, res);
});

process.on('SIGHUP', () => {
  try {
    provider = buildProvider();
    handler = provider.callback();
    console.log(`idp: signing keys re-read from ${jwksFile}`);
  } catch (error) {
    // The old keys stay in force: a bad file must not take the provider down.
    console.error(`idp: keys not reloaded: ${error.message}`);
  }
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

server.listen(port, issuerUrl.hostname === '[::1]' ? '::1' : '127.0.0.1', () => {
  console.log(`idp: ${issuer} (audience ${audience}, ${scopes.length} scopes)`);
});
