// Gatehouse demo relying party.
//
// A tiny OpenID Connect client, run beside a Gatehouse server, that shows the
// whole flow in a browser: sign-in (authorization code + PKCE), the ID token
// and userinfo, RP-initiated logout, and OpenID Connect Back-Channel Logout.
// Plain node:http, openid-client (the certified RP library) and jose.
//
// Everything is kept in memory: restarting the demo forgets every session.
// See README.md beside this file for how to register and run it.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import * as client from 'openid-client';
import * as jose from 'jose';

// ---------------------------------------------------------------------------
// Configuration (environment)

const ISSUER = process.env.GATEHOUSE_ISSUER || 'http://127.0.0.1:8080';
const CLIENT_ID = process.env.DEMO_CLIENT_ID;
const CLIENT_SECRET = process.env.DEMO_CLIENT_SECRET || undefined;
const HOST = process.env.DEMO_HOST || '127.0.0.1';
const PORT = parsePort(process.env.DEMO_PORT ?? '3000');
const SCOPE = process.env.DEMO_SCOPE || 'openid email profile';

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const LOGOUT_TOKEN_ALGS = ['RS256', 'ES256', 'EdDSA', 'Ed25519'];
const PENDING_TTL_MS = 10 * 60 * 1000; // a sign-in must finish within 10 minutes
const MAX_BODY_BYTES = 64 * 1024;

if (!CLIENT_ID) {
  process.stderr.write(
    'demo-rp: DEMO_CLIENT_ID is required (register the demo as a client first, see README.md)\n',
  );
  process.exit(2);
}

let issuerUrl;
try {
  issuerUrl = new URL(ISSUER);
} catch {
  process.stderr.write(`demo-rp: GATEHOUSE_ISSUER is not a URL: ${ISSUER}\n`);
  process.exit(2);
}

function parsePort(value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`demo-rp: DEMO_PORT must be an integer 0-65535, got ${value}\n`);
    process.exit(2);
  }
  return n;
}

// Set once the server listens (DEMO_PORT=0 picks a free port).
let BASE_URL;
let REDIRECT_URI;
let POST_LOGOUT_REDIRECT_URI;
let BACKCHANNEL_LOGOUT_URI;

// ---------------------------------------------------------------------------
// In-memory state

/** pending sign-ins: id (cookie demo_pending) -> { state, nonce, codeVerifier, createdAt } */
const pending = new Map();
/** app sessions: id (cookie demo_session) -> { idToken, claims, userinfo, createdAt } */
const sessions = new Map();
/** back-channel logout events received, oldest first */
const backchannelEvents = [];
/** logout token jti values already accepted (replay protection) */
const seenLogoutJtis = new Map();

function randomId() {
  return randomBytes(32).toString('base64url');
}

function sweep() {
  const now = Date.now();
  for (const [id, p] of pending) {
    if (now - p.createdAt > PENDING_TTL_MS) pending.delete(id);
  }
  for (const [jti, exp] of seenLogoutJtis) {
    if (exp * 1000 < now - 10 * 60 * 1000) seenLogoutJtis.delete(jti);
  }
}
setInterval(sweep, 60 * 1000).unref();

// ---------------------------------------------------------------------------
// OpenID Provider configuration (discovered lazily, retried until it works,
// so the demo may be started before the provider)

let configPromise;

function getConfig() {
  if (!configPromise) {
    configPromise = discover().catch((err) => {
      configPromise = undefined;
      throw err;
    });
  }
  return configPromise;
}

async function discover() {
  const execute = [];
  if (issuerUrl.protocol === 'http:') {
    // Development issuers are plain http; openid-client refuses http unless told.
    execute.push(client.allowInsecureRequests);
  }
  // Also verify ID token signatures against the provider's JWKS (openid-client
  // skips this by default for ID tokens received straight from the token endpoint).
  execute.push(client.enableNonRepudiationChecks);

  const config = CLIENT_SECRET
    ? await client.discovery(
        issuerUrl,
        CLIENT_ID,
        CLIENT_SECRET,
        client.ClientSecretBasic(CLIENT_SECRET),
        { execute },
      )
    : await client.discovery(issuerUrl, CLIENT_ID, undefined, client.None(), { execute });

  const md = config.serverMetadata();
  if (!md.jwks_uri) {
    throw new Error('the discovery document has no jwks_uri');
  }
  const jwks = jose.createRemoteJWKSet(new URL(md.jwks_uri));
  process.stderr.write(`demo-rp: discovered ${md.issuer}\n`);
  return { config, jwks };
}

// ---------------------------------------------------------------------------
// HTTP helpers

function parseCookies(req) {
  const out = Object.create(null);
  const header = req.headers.cookie;
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (name && !(name in out)) out[name] = value;
  }
  return out;
}

function cookie(name, value, { maxAge } = {}) {
  let c = `${name}=${value}; Path=/; HttpOnly; SameSite=Lax`;
  if (maxAge !== undefined) c += `; Max-Age=${maxAge}`;
  return c;
}

function clearCookie(name) {
  return cookie(name, '', { maxAge: 0 });
}

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(title, body) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
  pre { background: #f4f4f4; padding: .75rem; overflow-x: auto; }
  .error { color: #a00; }
</style>
</head>
<body>
<h1>Demo app</h1>
${body}
</body>
</html>
`;
}

function send(res, status, body, headers = {}) {
  const buf = Buffer.from(body);
  res.writeHead(status, { 'Content-Length': buf.length, ...headers });
  res.end(buf);
}

function sendHtml(res, status, html, headers = {}) {
  send(res, status, html, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  });
}

function sendJson(res, status, value, headers = {}) {
  send(res, status, JSON.stringify(value, null, 2) + '\n', {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...headers,
  });
}

function redirect(res, location, headers = {}) {
  res.writeHead(302, { Location: location, 'Cache-Control': 'no-store', ...headers });
  res.end();
}

function errorPage(res, status, title, message, headers = {}) {
  sendHtml(
    res,
    status,
    page(
      'Demo app',
      `<h2 class="error">${escapeHtml(title)}</h2>
<pre id="error">${escapeHtml(message)}</pre>
<p><a href="/">Back to the start page</a></p>`,
    ),
    headers,
  );
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Human-readable text for an error from openid-client, jose or fetch. */
function describeError(err) {
  const lines = [];
  lines.push(err?.message ?? String(err));
  if (err?.error) {
    lines.push(`error: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`);
  }
  if (err?.code) lines.push(`code: ${err.code}`);
  const cause = err?.cause;
  if (cause !== undefined && !(cause instanceof Response)) {
    if (cause instanceof URLSearchParams) {
      lines.push(`cause: ${cause.toString()}`);
    } else if (cause instanceof Error) {
      lines.push(`cause: ${cause.message}`);
    } else {
      try {
        lines.push(`cause: ${JSON.stringify(cause)}`);
      } catch {
        lines.push(`cause: ${String(cause)}`);
      }
    }
  }
  return lines.join('\n');
}

function log(message) {
  process.stderr.write(`demo-rp: ${message}\n`);
}

function currentSession(req) {
  const id = parseCookies(req).demo_session;
  if (!id) return { id: undefined, session: undefined };
  return { id, session: sessions.get(id) };
}

// ---------------------------------------------------------------------------
// Routes

async function home(req, res) {
  const { id, session } = currentSession(req);
  const headers = {};
  if (id && !session) {
    // The session was ended (for example by a back-channel logout).
    headers['Set-Cookie'] = clearCookie('demo_session');
  }
  if (!session) {
    sendHtml(
      res,
      200,
      page(
        'Demo app',
        `<p id="signed-out">You are signed out.</p>
<p><a id="sign-in" href="/login">Sign in with Gatehouse</a></p>
<p><small>Provider: <code>${escapeHtml(ISSUER)}</code>, client: <code>${escapeHtml(CLIENT_ID)}</code>.
Back-channel logouts received: <a href="/backchannel-events">${backchannelEvents.length}</a>.</small></p>`,
      ),
      headers,
    );
    return;
  }
  const { claims, userinfo } = session;
  const email = claims.email ?? userinfo?.email ?? claims.sub;
  const shown = {
    sub: claims.sub,
    sid: claims.sid,
    email: claims.email,
    auth_time: claims.auth_time,
  };
  const authTime =
    typeof claims.auth_time === 'number'
      ? `<p><small>Authenticated at (auth_time): ${escapeHtml(new Date(claims.auth_time * 1000).toISOString())}</small></p>\n`
      : '';
  sendHtml(
    res,
    200,
    page(
      'Demo app',
      `<p id="signed-in">Signed in as <strong>${escapeHtml(email)}</strong></p>
<p><a id="sign-out" href="/logout">Sign out</a></p>
<h2>ID token claims</h2>
<pre id="id-token-claims">${escapeHtml(JSON.stringify(shown, null, 2))}</pre>
${authTime}<details>
<summary>All ID token claims</summary>
<pre id="id-token-all-claims">${escapeHtml(JSON.stringify(claims, null, 2))}</pre>
</details>
<h2>UserInfo</h2>
<pre id="userinfo">${escapeHtml(JSON.stringify(userinfo, null, 2))}</pre>
<p><small>Back-channel logouts received: <a href="/backchannel-events">${backchannelEvents.length}</a>.</small></p>`,
    ),
    headers,
  );
}

async function login(req, res) {
  let config;
  try {
    ({ config } = await getConfig());
  } catch (err) {
    log(`discovery failed: ${describeError(err)}`);
    errorPage(res, 502, 'Cannot reach the provider', `Discovery of ${ISSUER} failed:\n${describeError(err)}`);
    return;
  }
  const state = client.randomState();
  const nonce = client.randomNonce();
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const pendingId = randomId();
  pending.set(pendingId, { state, nonce, codeVerifier, createdAt: Date.now() });

  const url = client.buildAuthorizationUrl(config, {
    scope: SCOPE,
    redirect_uri: REDIRECT_URI,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  redirect(res, url.href, {
    'Set-Cookie': cookie('demo_pending', pendingId, { maxAge: PENDING_TTL_MS / 1000 }),
  });
}

async function callback(req, res) {
  const pendingId = parseCookies(req).demo_pending;
  const p = pendingId ? pending.get(pendingId) : undefined;
  if (pendingId) pending.delete(pendingId); // one use only
  const clear = { 'Set-Cookie': clearCookie('demo_pending') };
  if (!p || Date.now() - p.createdAt > PENDING_TTL_MS) {
    errorPage(
      res,
      400,
      'Sign-in failed',
      'No sign-in is pending in this browser (the demo_pending cookie is missing or expired). Start again from the start page.',
      clear,
    );
    return;
  }
  try {
    const { config } = await getConfig();
    // The redirect URI we registered, with the authorization response's query.
    const currentUrl = new URL(REDIRECT_URI);
    currentUrl.search = new URL(req.url, BASE_URL).search;
    const tokens = await client.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: p.codeVerifier,
      expectedState: p.state,
      expectedNonce: p.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    const sessionId = randomId();
    sessions.set(sessionId, {
      idToken: tokens.id_token,
      claims,
      userinfo,
      createdAt: Date.now(),
    });
    log(`signed in sub=${claims.sub} sid=${claims.sid ?? '-'}`);
    res.writeHead(302, {
      Location: '/',
      'Cache-Control': 'no-store',
      'Set-Cookie': [clearCookie('demo_pending'), cookie('demo_session', sessionId)],
    });
    res.end();
  } catch (err) {
    log(`callback failed: ${describeError(err)}`);
    errorPage(res, 400, 'Sign-in failed', describeError(err), clear);
  }
}

function badLogoutToken(res, reason) {
  log(`back-channel logout rejected: ${reason}`);
  sendJson(res, 400, { error: 'invalid_request', error_description: reason });
}

async function backchannelLogout(req, res) {
  let body;
  try {
    body = await readBody(req);
  } catch (err) {
    badLogoutToken(res, err.message);
    return;
  }
  const logoutToken = new URLSearchParams(body).get('logout_token');
  if (!logoutToken) {
    badLogoutToken(res, 'missing logout_token');
    return;
  }

  let config, jwks;
  try {
    ({ config, jwks } = await getConfig());
  } catch (err) {
    log(`discovery failed: ${describeError(err)}`);
    sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'discovery failed' });
    return;
  }

  let payload;
  try {
    ({ payload } = await jose.jwtVerify(logoutToken, jwks, {
      issuer: config.serverMetadata().issuer,
      audience: CLIENT_ID,
      typ: 'logout+jwt',
      algorithms: LOGOUT_TOKEN_ALGS,
      requiredClaims: ['iat', 'exp', 'jti'],
    }));
  } catch (err) {
    badLogoutToken(res, `logout token verification failed: ${err.code ?? ''} ${err.message}`.trim());
    return;
  }

  const events = payload.events;
  if (
    !events ||
    typeof events !== 'object' ||
    Array.isArray(events) ||
    !Object.hasOwn(events, BACKCHANNEL_LOGOUT_EVENT) ||
    typeof events[BACKCHANNEL_LOGOUT_EVENT] !== 'object' ||
    events[BACKCHANNEL_LOGOUT_EVENT] === null
  ) {
    badLogoutToken(res, `events claim lacks the ${BACKCHANNEL_LOGOUT_EVENT} member`);
    return;
  }
  if (Object.hasOwn(payload, 'nonce')) {
    badLogoutToken(res, 'logout token must not contain a nonce');
    return;
  }
  const sid = typeof payload.sid === 'string' && payload.sid ? payload.sid : undefined;
  const sub = typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined;
  if (!sid && !sub) {
    badLogoutToken(res, 'logout token has neither sid nor sub');
    return;
  }
  if (typeof payload.jti !== 'string' || !payload.jti) {
    badLogoutToken(res, 'logout token jti must be a non-empty string');
    return;
  }
  if (seenLogoutJtis.has(payload.jti)) {
    badLogoutToken(res, `logout token replayed (jti ${payload.jti})`);
    return;
  }
  seenLogoutJtis.set(payload.jti, payload.exp);

  let ended = 0;
  for (const [id, s] of sessions) {
    const match = sid ? s.claims.sid === sid : s.claims.sub === sub;
    if (match) {
      sessions.delete(id);
      ended += 1;
    }
  }
  const event = {
    sid: sid ?? null,
    sub: sub ?? null,
    jti: payload.jti,
    iat: payload.iat,
    received_at: Math.floor(Date.now() / 1000),
    sessions_ended: ended,
  };
  backchannelEvents.push(event);
  log(`back-channel logout sid=${event.sid ?? '-'} sub=${event.sub ?? '-'} sessions_ended=${ended}`);
  res.writeHead(200, { 'Cache-Control': 'no-store', 'Content-Length': 0 });
  res.end();
}

async function logout(req, res) {
  const { id, session } = currentSession(req);
  if (id) sessions.delete(id);
  const clear = { 'Set-Cookie': clearCookie('demo_session') };
  if (!session) {
    redirect(res, '/', clear);
    return;
  }
  try {
    const { config } = await getConfig();
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: session.idToken,
      post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
      state: client.randomState(),
    });
    redirect(res, url.href, clear);
  } catch (err) {
    // No end_session_endpoint (or the provider is down): the local sign-out still happened.
    log(`RP-initiated logout unavailable: ${describeError(err)}`);
    redirect(res, '/', clear);
  }
}

const routes = {
  'GET /': home,
  'GET /login': login,
  'GET /callback': callback,
  'POST /backchannel-logout': backchannelLogout,
  'GET /backchannel-events': (req, res) => sendJson(res, 200, backchannelEvents),
  'GET /logout': logout,
};

async function handle(req, res) {
  const { pathname } = new URL(req.url, BASE_URL);
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const handler = routes[`${method} ${pathname}`];
  if (handler) {
    await handler(req, res);
    return;
  }
  const allowed = Object.keys(routes)
    .filter((k) => k.endsWith(` ${pathname}`))
    .map((k) => k.split(' ')[0]);
  if (allowed.length) {
    send(res, 405, 'method not allowed\n', {
      Allow: allowed.join(', '),
      'Content-Type': 'text/plain; charset=utf-8',
    });
    return;
  }
  send(res, 404, 'not found\n', { 'Content-Type': 'text/plain; charset=utf-8' });
}

// ---------------------------------------------------------------------------
// Start

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    log(`internal error on ${req.method} ${req.url}: ${err?.stack ?? err}`);
    if (!res.headersSent) {
      errorPage(res, 500, 'Internal error', describeError(err));
    } else {
      res.destroy();
    }
  });
});

server.on('error', (err) => {
  log(`cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  // URLs use the host the demo was bound to; a wildcard bind is reached via loopback.
  let urlHost = HOST === '0.0.0.0' || HOST === '::' || HOST === '' ? '127.0.0.1' : HOST;
  if (urlHost.includes(':')) urlHost = `[${urlHost}]`;
  BASE_URL = `http://${urlHost}:${port}`;
  REDIRECT_URI = `${BASE_URL}/callback`;
  POST_LOGOUT_REDIRECT_URI = `${BASE_URL}/`;
  BACKCHANNEL_LOGOUT_URI = `${BASE_URL}/backchannel-logout`;

  process.stdout.write(`demo-rp listening on ${BASE_URL}\n`);
  process.stderr.write(
    [
      `demo-rp: issuer                   ${ISSUER}`,
      `demo-rp: client_id                ${CLIENT_ID} (${CLIENT_SECRET ? 'confidential, client_secret_basic' : 'public, PKCE only'})`,
      `demo-rp: redirect URI             ${REDIRECT_URI}`,
      `demo-rp: post-logout redirect URI ${POST_LOGOUT_REDIRECT_URI}`,
      `demo-rp: back-channel logout URI  ${BACKCHANNEL_LOGOUT_URI}`,
      '',
    ].join('\n'),
  );

  // Discover now so a misconfigured issuer shows up at once; failures are retried on use.
  getConfig().catch((err) => log(`discovery of ${ISSUER} failed (will retry on use): ${describeError(err)}`));
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
