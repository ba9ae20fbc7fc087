// TEST-ONLY OpenID provider for hoop-kube's integration tests. Never deploy this.
//
// The real `oidc-provider` (npm, pinned in package.json) on 127.0.0.1, with the device
// authorization grant (RFC 8628) on, a public client `hoop-kube`, three users, and a few
// test-only routes under /test/ that stand in for a human at a browser. See README.md.
//
//   node idp.mjs [PORT]          (or IDP_PORT=PORT; 0 or nothing = pick a free port)
//
// stdout carries exactly one line, once the server listens:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else (oidc-provider's notices and warnings, request errors) goes to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints its notices with console.info, i.e. to stdout, some of them while its
// module loads; stdout is reserved for the ready line, so send all console output to stderr
// before the provider is imported (hence the dynamic import below).
const realStdoutWrite = process.stdout.write.bind(process.stdout);
for (const level of ['log', 'info', 'debug', 'trace']) {
  console[level] = (...args) => console.error(...args);
}

const { default: Provider, errors } = await import('oidc-provider');

// ---------------------------------------------------------------------------------------------
// Configuration (environment)

function envInt(name, dflt, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`idp: ${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const PORT = envInt('IDP_PORT', Number(process.argv[2] ?? 0), 0);
const TTL = {
  IdToken: envInt('IDP_ID_TOKEN_TTL', 300),
  AccessToken: envInt('IDP_ACCESS_TOKEN_TTL', 300),
  RefreshToken: envInt('IDP_REFRESH_TOKEN_TTL', 3600),
  DeviceCode: envInt('IDP_DEVICE_CODE_TTL', 600),
};
// `interval` added to the device authorization response; 0 = leave it out (the provider's own
// behaviour: clients then fall back to RFC 8628's 5 seconds).
const POLL_INTERVAL = envInt('IDP_POLL_INTERVAL', 1, 0);

const CLIENT_ID = 'hoop-kube';
// A second registered client, so that tests can mint an otherwise valid ID token whose `aud`
// is not hoop-kube (POST /test/token {"aud": "other-client"}).
const OTHER_CLIENT_ID = 'other-client';

// Users: subject -> claims. IDP_USERS (a JSON object of the same shape) adds or replaces users.
const USERS = {
  alice: { email: 'alice@example.com', email_verified: true, groups: ['dev'] },
  bob: { email: 'bob@example.com', email_verified: true, groups: ['ops'] },
  carol: { email: 'carol@example.com', email_verified: true }, // no groups claim at all
};
if (process.env.IDP_USERS) {
  Object.assign(USERS, JSON.parse(process.env.IDP_USERS));
}
const ID_TOKEN_SCOPE = 'openid email groups';

// ---------------------------------------------------------------------------------------------
// Keys: fresh on every start. RS256 is what ID tokens are signed with; an ES256 key is
// published beside it (and used by POST /test/token {"alg": "ES256"}).

function privateJwk(keyObject, alg, kidPrefix) {
  const jwk = keyObject.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `${kidPrefix}-${crypto.randomBytes(6).toString('hex')}` };
}
const jwks = {
  keys: [
    // the first key for an alg is the one used to sign
    privateJwk(crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'RS256', 'rs256'),
    privateJwk(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'ES256', 'es256'),
  ],
};

// ---------------------------------------------------------------------------------------------
// Listen first (port 0 = any), so that the issuer can name the real port.

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;

const publicClient = (clientId) => ({
  client_id: clientId,
  token_endpoint_auth_method: 'none',
  grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
  response_types: [],
  redirect_uris: [],
  id_token_signed_response_alg: 'RS256',
});

const provider = new Provider(ISSUER, {
  clients: [publicClient(CLIENT_ID), publicClient(OTHER_CLIENT_ID)],
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    deviceFlow: { enabled: true },
    // The provider's development login/consent pages stay on, so that a verification URL can
    // also be walked like a browser would (any login name that is a known user).
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  scopes: ['openid', 'offline_access', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Put the scope-granted claims (email, groups) into the ID token itself.
  conformIdTokenClaims: false,
  // Refresh tokens for hoop-kube without asking for offline_access (no consent screen here).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    IdToken: TTL.IdToken,
    AccessToken: TTL.AccessToken,
    RefreshToken: TTL.RefreshToken,
    DeviceCode: TTL.DeviceCode,
    Grant: Math.max(TTL.RefreshToken * 10, 86400),
    Session: 86400,
    Interaction: 3600,
  },
  findAccount: async (ctx, sub) => {
    if (!Object.hasOwn(USERS, sub)) return undefined;
    return {
      accountId: sub,
      claims: async () => ({ sub, ...USERS[sub] }),
    };
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('server_error', (ctx, err) => console.error('idp: server_error', err));

// RFC 8628 `interval`: the provider sends none. The event fires with the very object that
// becomes the response body, before it is written.
provider.on('device_authorization.success', (ctx, body) => {
  if (POLL_INTERVAL > 0) body.interval = POLL_INTERVAL;
  // user_code -> jti (= device_code), kept after the provider forgets the code, for /test/polls
  jtiByUserCode.set(normalizeUserCode(body.user_code), ctx.oidc.entities.DeviceCode.jti);
});

// ---------------------------------------------------------------------------------------------
// Per-device-code bookkeeping for the test routes: every token-endpoint poll is recorded, and a
// test can ask for the next N polls to be answered `slow_down`. DeviceCode.find is what the
// token endpoint calls with the device_code (= the stored token's jti); an OIDCProviderError
// thrown there becomes the token endpoint's error response.

const polls = new Map(); // jti -> { at: [ms], slowDown: n }
const jtiByUserCode = new Map(); // normalized user_code -> jti
function pollState(jti) {
  let s = polls.get(jti);
  if (!s) {
    s = { at: [], slowDown: 0 };
    polls.set(jti, s);
  }
  return s;
}
{
  const { DeviceCode } = provider;
  const originalFind = DeviceCode.find;
  DeviceCode.find = async function find(value, options) {
    if (Provider.ctx?.oidc?.route === 'token' && typeof value === 'string') {
      const s = pollState(value);
      s.at.push(Date.now());
      if (s.slowDown > 0) {
        s.slowDown -= 1;
        throw new errors.SlowDown();
      }
    }
    return originalFind.call(this, value, options);
  };
}

// ---------------------------------------------------------------------------------------------
// Test-only routes (POST /test/approve, /test/deny, /test/token, /test/slow_down,
// GET /test/polls, GET /test/grants). Mounted as provider middleware in front of the provider's own router.

function isLoopback(addr) {
  return addr === '127.0.0.1' || addr === '::1' || addr === '::ffff:127.0.0.1';
}

class HttpError extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new HttpError(413, 'invalid_request', 'body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch (e) {
    throw new HttpError(400, 'invalid_request', `body must be a JSON object: ${e.message}`);
  }
}

function normalizeUserCode(input) {
  // what oidc-provider stores: upper case, separators removed
  return String(input).toUpperCase().replace(/\W/g, '');
}

async function pendingDeviceCode(userCode) {
  if (typeof userCode !== 'string' || !userCode) {
    throw new HttpError(400, 'invalid_request', 'user_code (string) is required');
  }
  const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(userCode), {
    ignoreExpiration: true,
  });
  if (!code) throw new HttpError(404, 'not_found', `no device code with user_code ${userCode}`);
  if (code.isExpired) throw new HttpError(410, 'expired', 'the device code has expired');
  if (code.error || code.accountId || code.inFlight || code.consumed) {
    throw new HttpError(409, 'already_used', 'the device code was already approved or denied');
  }
  return code;
}

function knownUser(sub) {
  if (typeof sub !== 'string' || !Object.hasOwn(USERS, sub)) {
    throw new HttpError(400, 'invalid_request', `unknown sub ${JSON.stringify(sub)}; users: ${Object.keys(USERS).join(', ')}`);
  }
  return sub;
}

// POST /test/approve {"user_code", "sub"}: what the provider itself does when a signed-in user
// confirms the code on /device (actions/authorization/device.js, deviceVerificationResponse),
// minus the browser, session and interaction: a Grant for (sub, client) with the requested OIDC
// scopes and claims, and the DeviceCode updated with accountId, grantId, scope and auth_time.
// The next poll of the token endpoint then issues tokens through the provider's normal code.
async function approve(body) {
  const sub = knownUser(body.sub);
  const code = await pendingDeviceCode(body.user_code);

  const supported = new Set(['openid', 'offline_access', 'email', 'groups']);
  const requested = String(code.params.scope ?? '').split(' ').filter((s) => supported.has(s));

  const grant = new provider.Grant({ accountId: sub, clientId: code.clientId });
  if (requested.length) grant.addOIDCScope(requested.join(' '));
  let requestedClaims;
  if (code.params.claims) {
    requestedClaims = JSON.parse(code.params.claims);
    grant.addOIDCClaims([
      ...Object.keys(requestedClaims.id_token ?? {}),
      ...Object.keys(requestedClaims.userinfo ?? {}),
    ]);
  }
  const grantId = await grant.save();

  Object.assign(code, {
    accountId: sub,
    grantId,
    scope: requested.join(' '),
    authTime: Math.floor(Date.now() / 1000),
    amr: ['pwd'],
  });
  if (requestedClaims) code.claims = requestedClaims;
  await code.save();
  return { approved: true, sub, scope: code.scope, client_id: code.clientId };
}

// POST /test/deny {"user_code"}: exactly what the provider stores when the user presses
// "Abort" on the confirmation page; the next poll answers `access_denied`.
async function deny(body) {
  const code = await pendingDeviceCode(body.user_code);
  Object.assign(code, {
    error: 'access_denied',
    errorDescription: 'End-User aborted interaction',
  });
  await code.save();
  return { denied: true, client_id: code.clientId };
}

// POST /test/token {"sub", "aud"?, "ttl"?, "alg"?, "claims"?}: an ID token issued by the
// provider's own IdToken model (models/id_token.js; the same class the token endpoint uses),
// so it is signed with the provider's keystore and its kid is in /jwks. `aud` must be a
// registered client (hoop-kube, other-client): the model always sets aud = client_id.
// `ttl` (seconds, default IDP_ID_TOKEN_TTL) may be negative for an already expired token.
// `claims` are merged over the result (e.g. {"groups": [...], "nbf": ...}; iss/aud/sub/exp
// are always the provider's). `alg`: RS256 (default) or ES256.
async function mintIdToken(body) {
  const sub = knownUser(body.sub);
  const aud = body.aud ?? CLIENT_ID;
  let client = await provider.Client.find(String(aud));
  if (!client) {
    throw new HttpError(400, 'invalid_request', `aud must be a registered client: ${CLIENT_ID}, ${OTHER_CLIENT_ID}`);
  }
  const ttl = body.ttl ?? TTL.IdToken;
  if (!Number.isInteger(ttl) || ttl === 0) {
    throw new HttpError(400, 'invalid_request', 'ttl must be a non-zero integer (seconds; negative = already expired)');
  }
  if (body.alg !== undefined && body.alg !== client.idTokenSignedResponseAlg) {
    if (!['RS256', 'ES256'].includes(body.alg)) {
      throw new HttpError(400, 'invalid_request', 'alg must be RS256 or ES256');
    }
    // The signing alg is a client property; a view of the same Client with another one.
    client = Object.create(client, { idTokenSignedResponseAlg: { value: body.alg } });
  }
  const token = new provider.IdToken({
    sub,
    ...USERS[sub],
    auth_time: Math.floor(Date.now() / 1000),
  }, { client });
  token.scope = ID_TOKEN_SCOPE;
  for (const [k, v] of Object.entries(body.claims ?? {})) token.set(k, v);
  const idToken = await token.issue({
    use: 'idtoken',
    expiresAt: Math.floor(Date.now() / 1000) + ttl,
  });
  return { id_token: idToken };
}

// POST /test/slow_down {"user_code", "count"?}: the next `count` (default 1) token-endpoint
// polls for that device code are answered `slow_down`.
function jtiFor(userCode) {
  const jti = jtiByUserCode.get(normalizeUserCode(userCode ?? ''));
  if (!jti) throw new HttpError(404, 'not_found', `no device code with user_code ${userCode}`);
  return jti;
}

async function slowDown(body) {
  const jti = jtiFor(body.user_code);
  const count = body.count ?? 1;
  if (!Number.isInteger(count) || count < 0) throw new HttpError(400, 'invalid_request', 'count must be a non-negative integer');
  pollState(jti).slowDown = count;
  return { slow_down: count };
}

// GET /test/polls?user_code=...: the token-endpoint polls seen for that device code
// ({"polls": [epoch ms, ...]}), so that tests can check a client's polling cadence.
async function listPolls(query) {
  return { polls: [...(polls.get(jtiFor(query.user_code))?.at ?? [])] };
}

const testRoutes = {
  'POST /test/approve': approve,
  'POST /test/deny': deny,
  'POST /test/token': mintIdToken,
  'POST /test/slow_down': slowDown,
};

// Token-endpoint requests by grant_type, answered or refused (GET /test/grants), so tests can
// count refreshes at the IdP itself.
const grantCounts = {};
provider.use(async (ctx, next) => {
  await next();
  if (ctx.method === 'POST' && ctx.path === '/token') {
    const type = ctx.oidc?.params?.grant_type ?? 'unknown';
    grantCounts[type] = (grantCounts[type] ?? 0) + 1;
  }
});

provider.use(async (ctx, next) => {
  if (ctx.path !== '/test' && !ctx.path.startsWith('/test/')) return next();
  ctx.type = 'json';
  try {
    if (!isLoopback(ctx.req.socket.remoteAddress)) {
      throw new HttpError(403, 'forbidden', 'test routes answer loopback clients only');
    }
    let result;
    if (ctx.method === 'GET' && ctx.path === '/test/polls') {
      result = await listPolls(ctx.query);
    } else if (ctx.method === 'GET' && ctx.path === '/test/grants') {
      result = { ...grantCounts };
    } else {
      const handler = testRoutes[`${ctx.method} ${ctx.path}`];
      if (!handler) throw new HttpError(404, 'not_found', `no test route ${ctx.method} ${ctx.path}`);
      result = await handler(await readJson(ctx.req));
    }
    ctx.status = 200;
    ctx.body = result;
  } catch (err) {
    if (err instanceof HttpError) {
      ctx.status = err.status;
      ctx.body = { error: err.error, error_description: err.message };
    } else {
      console.error(`idp: ${ctx.method} ${ctx.path} failed:`, err);
      ctx.status = 500;
      ctx.body = { error: 'server_error', error_description: String(err?.message ?? err) };
    }
  }
  return undefined;
});

// ---------------------------------------------------------------------------------------------

server.on('request', provider.callback());

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
// The test harness holds our stdin; when it goes away (the test process died), so do we.
if (process.env.IDP_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

realStdoutWrite(`${JSON.stringify({ issuer: ISSUER, port })}\n`);
