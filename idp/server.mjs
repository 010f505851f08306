// The telecom hub's development and test OpenID provider: oidc-provider (panva, OpenID
// Certified), configured for what the hub needs and nothing more.
//
// - client credentials is the grant of machines; access tokens are JWTs for one resource, the
//   hub's API (IDP_AUDIENCE is both the resource indicator and the token's `aud`), with the
//   hub's scopes (IDP_SCOPES);
// - people sign in to the hub's console with the authorization code grant and PKCE (S256), at a
//   login page of this provider, when IDP_CONSOLE_FILE names a JSON file with the console's
//   client (`client_id`, `client_secret`, `redirect_uris`) and the people (`username`,
//   `password`, `name`, `groups`, `scopes`): their access tokens carry their own scopes and a
//   `groups` claim; consent is implied (the console is the hub's own client);
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

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
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
const consoleFile = process.env.IDP_CONSOLE_FILE || '';

// --- the console's client and the people who sign in to it (development only) ----------------

function readConsole() {
  if (!consoleFile) return { client: undefined, people: new Map() };
  const { client, people } = JSON.parse(readFileSync(consoleFile, 'utf8'));
  const known = new Set(scopes);
  const byName = new Map();
  for (const person of people || []) {
    if (!person.username || !person.password) throw new Error(`${consoleFile}: a person needs a username and a password`);
    byName.set(person.username, {
      ...person,
      groups: (person.groups || []).filter((g) => typeof g === 'string' && g !== '*'),
      scopes: (person.scopes || []).filter((s) => known.has(s)),
    });
  }
  return { client, people: byName };
}

const consoleConfig = readConsole();

function passwordMatches(person, offered) {
  const want = createHash('sha256').update(String(person.password)).digest();
  const got = createHash('sha256').update(String(offered)).digest();
  return timingSafeEqual(want, got);
}

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
    clients: consoleConfig.client
      ? [{
        client_id: consoleConfig.client.client_id,
        client_secret: consoleConfig.client.client_secret,
        redirect_uris: consoleConfig.client.redirect_uris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: ['openid', 'profile', ...scopes].join(' '),
      }]
      : [],
    async findAccount(ctx, id) {
      const person = consoleConfig.people.get(id);
      if (!person) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, name: person.name || id }) };
    },
    // The code grant, and the `profile` scope, only where the console signs people in.
    claims: consoleConfig.client ? { openid: ['sub'], profile: ['name'] } : { openid: ['sub'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    jwks: { keys },
    scopes,
    // The login interaction's cookies; a restart (or SIGHUP) ends the sign-ins under way.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // Never used (no ID tokens without a login) but validated: the alg the keys can sign.
      id_token_signed_response_alg: signingAlg(keys[0]),
    },
    responseTypes: consoleConfig.client ? ['code', 'none'] : ['none'],
    pkce: { required: () => true },
    // A client always proves it holds its secret: no public (`none`) or JWT-assertion clients.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    features: {
      // People log in at this server's own page (below), not oidc-provider's dev pages.
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
        // The console's client is configured here, not registered: its own grant.
        if (consoleConfig.client && metadata.client_id === consoleConfig.client.client_id) return;
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
      const person = token.accountId ? consoleConfig.people.get(token.accountId) : undefined;
      if (person) return { groups: person.groups };
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

// --- the console's login page: username and password of IDP_CONSOLE_FILE's people -----------

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, message) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in · hub IdP</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}
label{display:block;font-weight:600;margin:.6rem 0 .2rem}input{font:inherit;width:100%;padding:.45rem;border:1px solid #4a5360;border-radius:4px}
button{font:inherit;margin-top:1rem;padding:.5rem 1rem;background:#0b5cad;color:#fff;border:0;border-radius:4px}
.error{color:#a4161a;border-left:4px solid #a4161a;padding-left:.6rem}</style></head><body>
<h1>Sign in to the telecom hub</h1>${message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 8192) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

// The console is the hub's own client: consent is implied. What a person may do is theirs
// (their scopes are granted); every other scope asked for is refused, and recorded as such so
// that nothing prompts again.
async function consent(req, res, details) {
  const { accountId } = details.session;
  const person = consoleConfig.people.get(accountId);
  if (!person || details.params.client_id !== consoleConfig.client?.client_id) {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'only the console signs people in',
    });
    return;
  }
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, asked] of Object.entries(missingResourceScopes || {})) {
    const granted = asked.filter((scope) => person.scopes.includes(scope));
    const refused = asked.filter((scope) => !person.scopes.includes(scope));
    if (granted.length) grant.addResourceScope(indicator, granted.join(' '));
    if (refused.length) grant.rejectResourceScope(indicator, refused.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(
    req, res, { consent: { grantId } }, { mergeWithLastSubmission: true },
  );
}

async function interaction(req, res, path) {
  const send = (status, html) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  };
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    send(400, '<p>This sign-in has expired: start again from the console.</p>');
    return;
  }
  if (details.prompt.name === 'consent') {
    await consent(req, res, details);
    return;
  }
  if (req.method === 'GET' && path === `/interaction/${details.uid}`) {
    send(200, loginPage(details.uid));
    return;
  }
  if (req.method === 'POST' && path === `/interaction/${details.uid}/login`) {
    const form = await readForm(req);
    const person = consoleConfig.people.get(form.get('username') || '');
    if (!person || !passwordMatches(person, form.get('password') || '')) {
      send(401, loginPage(details.uid, 'Unknown username or wrong password.'));
      return;
    }
    await provider.interactionFinished(
      req, res, { login: { accountId: person.username } }, { mergeWithLastSubmission: false },
    );
    return;
  }
  send(404, '<p>Not found.</p>');
}

// RFC 7592 read and delete only: an update (PUT) could change a client's partner_id or
// scopes, which only its registration fixed.
const server = createServer((req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (path.startsWith('/interaction/')) {
    interaction(req, res, path).catch((error) => {
      console.error(`idp: interaction failed: ${error.message}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    return;
  }
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
