// Headless check that openid-client (the OpenID-certified RP library)
// completes the whole authorization code + PKCE flow against a running
// Gatehouse provider: discovery, the hosted login (and consent) pages, the
// RFC 9207 iss response parameter, the token exchange with ID token
// validation (signature against the JWKS, iss, aud, exp, nonce), and userinfo.
//
// Env: GATEHOUSE_ISSUER, CLIENT_ID, CLIENT_SECRET (optional), REDIRECT_URI,
//      USER_EMAIL, USER_PASSWORD, SCOPE (default "openid email profile").
// Prints one line of JSON to stdout and exits 0; on failure prints the error
// to stderr and exits 1.

import * as client from 'openid-client';

const MAX_HOPS = 15;
const HTTP_TIMEOUT_MS = 15_000;

function env(name, fallback) {
  const value = process.env[name];
  if (value !== undefined && value !== '') return value;
  if (fallback !== undefined) return fallback;
  throw new Error(`environment variable ${name} is required`);
}

// ---------------------------------------------------------------------------
// A small cookie jar: per origin, name=value, attributes ignored except that
// Max-Age<=0 or an Expires in the past deletes the cookie.

class CookieJar {
  #byOrigin = new Map();

  store(url, response) {
    const origin = new URL(url).origin;
    let jar = this.#byOrigin.get(origin);
    if (!jar) this.#byOrigin.set(origin, (jar = new Map()));
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      if (i <= 0) continue;
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.split('=').map((s) => s.trim());
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') {
          const t = Date.parse(v);
          return !Number.isNaN(t) && t <= Date.now();
        }
        return false;
      });
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
  }

  header(url) {
    const jar = this.#byOrigin.get(new URL(url).origin);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

// ---------------------------------------------------------------------------
// Tiny HTML form helpers (the provider's own pages, not arbitrary HTML)

function decodeEntities(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&apos;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

function attr(tag, name) {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
  if (!m) return undefined;
  return decodeEntities(m[1] ?? m[2] ?? m[3]);
}

/** The first POST form whose action ends with `path` (or the only POST form). */
function findForm(html, path) {
  const forms = [...html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)].map((m) => m[0]);
  const posts = forms.filter((f) => (attr(f.match(/<form\b[^>]*>/i)[0], 'method') || 'get').toLowerCase() === 'post');
  const byAction = posts.find((f) => {
    const action = attr(f.match(/<form\b[^>]*>/i)[0], 'action') || '';
    return new URL(action, 'http://x' + path).pathname.endsWith(path);
  });
  return byAction ?? (posts.length === 1 ? posts[0] : undefined);
}

function hiddenInputs(form) {
  const params = new URLSearchParams();
  for (const [tag] of form.matchAll(/<input\b[^>]*>/gi)) {
    if ((attr(tag, 'type') || '').toLowerCase() !== 'hidden') continue;
    const name = attr(tag, 'name');
    if (name) params.append(name, attr(tag, 'value') ?? '');
  }
  return params;
}

function csrfToken(html) {
  const m =
    html.match(/<input\b[^>]*\bname\s*=\s*["']csrf_token["'][^>]*\bvalue\s*=\s*["']([^"']*)["']/i) ||
    html.match(/<input\b[^>]*\bvalue\s*=\s*["']([^"']*)["'][^>]*\bname\s*=\s*["']csrf_token["']/i);
  return m ? decodeEntities(m[1]) : undefined;
}

function snippet(text, n = 600) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

// ---------------------------------------------------------------------------
// The browser part: follow redirects by hand until the provider sends us to
// REDIRECT_URI, filling in the login and consent forms on the way.

function isRedirectUri(location, redirectUri) {
  if (location.startsWith(redirectUri)) return true;
  const a = new URL(location);
  const b = new URL(redirectUri);
  return a.origin === b.origin && a.pathname === b.pathname;
}

async function walkBrowser(authorizationUrl, { redirectUri, email, password }) {
  const jar = new CookieJar();
  let url = authorizationUrl;
  let method = 'GET';
  let body;
  let loginPosts = 0;
  let consentPosts = 0;
  const trail = [];

  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const headers = { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8' };
    const cookies = jar.header(url);
    if (cookies) headers.cookie = cookies;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';

    const res = await fetch(url, {
      method,
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    jar.store(url, res);
    trail.push(`${method} ${new URL(url).pathname} -> ${res.status}`);

    if ([301, 302, 303, 307, 308].includes(res.status)) {
      await res.arrayBuffer(); // drain
      const raw = res.headers.get('location');
      if (!raw) throw new Error(`${res.status} from ${url} without a Location header`);
      const next = new URL(raw, url).href;
      if (isRedirectUri(next, redirectUri) || raw.startsWith(redirectUri)) {
        return { callbackUrl: new URL(next), trail };
      }
      if (res.status === 307 || res.status === 308) {
        // method and body are kept
      } else {
        method = 'GET';
        body = undefined;
      }
      url = next;
      continue;
    }

    const text = await res.text();
    const contentType = res.headers.get('content-type') || '';
    if (res.status !== 200 || !contentType.includes('text/html')) {
      throw new Error(
        `unexpected ${res.status} ${contentType} from ${method} ${url}: ${snippet(text)}`,
      );
    }

    const path = new URL(url).pathname;
    if (path.endsWith('/login')) {
      if (loginPosts > 0) {
        throw new Error(`the login page came back after posting the credentials (wrong USER_EMAIL/USER_PASSWORD?): ${snippet(text)}`);
      }
      const form = findForm(text, '/login');
      const token = csrfToken(form ?? text);
      if (!token) throw new Error(`no csrf_token on the login page: ${snippet(text)}`);
      const params = form ? hiddenInputs(form) : new URLSearchParams();
      params.set('csrf_token', token);
      params.set('email', email);
      params.set('password', password);
      const action = form ? attr(form.match(/<form\b[^>]*>/i)[0], 'action') : undefined;
      url = new URL(action || '/login', url).href;
      method = 'POST';
      body = params.toString();
      loginPosts++;
      continue;
    }
    if (path.endsWith('/consent')) {
      if (consentPosts > 0) {
        throw new Error(`the consent page came back after allowing: ${snippet(text)}`);
      }
      const form = findForm(text, '/consent');
      const token = csrfToken(form ?? text);
      if (!token) throw new Error(`no csrf_token on the consent page: ${snippet(text)}`);
      const params = form ? hiddenInputs(form) : new URLSearchParams();
      params.set('csrf_token', token);
      params.set('decision', 'allow');
      const action = form ? attr(form.match(/<form\b[^>]*>/i)[0], 'action') : undefined;
      url = new URL(action || '/consent', url).href;
      method = 'POST';
      body = params.toString();
      consentPosts++;
      continue;
    }
    throw new Error(`unexpected HTML page at ${url}: ${snippet(text)}`);
  }
  throw new Error(`no redirect to REDIRECT_URI after ${MAX_HOPS} hops:\n  ${trail.join('\n  ')}`);
}

// ---------------------------------------------------------------------------

async function main() {
  const issuer = new URL(env('GATEHOUSE_ISSUER', 'http://127.0.0.1:8080'));
  const clientId = env('CLIENT_ID');
  const clientSecret = process.env.CLIENT_SECRET || undefined;
  const redirectUri = env('REDIRECT_URI');
  const email = env('USER_EMAIL');
  const password = env('USER_PASSWORD');
  const scope = env('SCOPE', 'openid email profile');

  // 1. Discovery. http issuers are refused by openid-client unless allowed;
  //    enableNonRepudiationChecks makes it verify the ID token signature
  //    against the JWKS (by default it relies on TLS for token-endpoint
  //    responses and skips the signature).
  const execute = [client.enableNonRepudiationChecks];
  if (issuer.protocol === 'http:') execute.unshift(client.allowInsecureRequests);
  const config = clientSecret
    ? await client.discovery(issuer, clientId, clientSecret, client.ClientSecretBasic(clientSecret), { execute })
    : await client.discovery(issuer, clientId, undefined, client.None(), { execute });
  const metadata = config.serverMetadata();

  if (metadata.authorization_response_iss_parameter_supported !== true) {
    throw new Error(
      'discovery does not advertise authorization_response_iss_parameter_supported: true (RFC 9207)',
    );
  }
  if (!metadata.code_challenge_methods_supported?.includes('S256')) {
    throw new Error('discovery does not list S256 in code_challenge_methods_supported');
  }

  // 2. PKCE S256, state, nonce.
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });

  // 3. The browser part.
  const { callbackUrl, trail } = await walkBrowser(authorizationUrl.href, {
    redirectUri,
    email,
    password,
  });
  const err = callbackUrl.searchParams.get('error');
  if (err) {
    throw new Error(
      `authorization error at the redirect URI: ${err} ${callbackUrl.searchParams.get('error_description') ?? ''}`.trim(),
    );
  }
  const iss = callbackUrl.searchParams.get('iss');
  if (!iss) throw new Error(`no iss parameter in the authorization response (RFC 9207): ${callbackUrl.href}`);
  if (iss !== metadata.issuer) {
    throw new Error(`iss in the authorization response is ${iss}, discovery says ${metadata.issuer}`);
  }

  // 4. Token exchange; openid-client validates state, iss, and the ID token.
  const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  if (!claims) throw new Error('no ID token in the token response');

  // 5. UserInfo (openid-client checks that its sub equals the ID token's).
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);

  if (claims.email !== email) {
    throw new Error(`ID token email is ${JSON.stringify(claims.email)}, expected ${JSON.stringify(email)}`);
  }
  if (userinfo.sub !== claims.sub) {
    throw new Error(`userinfo sub ${userinfo.sub} differs from the ID token sub ${claims.sub}`);
  }

  process.stderr.write(`oidc-client flow: ${trail.join(', ')}\n`);
  process.stdout.write(
    JSON.stringify({
      sub: claims.sub,
      email: claims.email,
      id_token_claims: claims,
      userinfo,
      token_type: tokens.token_type,
      scope: tokens.scope,
    }) + '\n',
  );
}

async function report(error) {
  const lines = [`oidc-client flow FAILED: ${error?.message ?? error}`];
  if (error?.code) lines.push(`  code: ${error.code}`);
  if (error?.error) lines.push(`  error: ${error.error}`);
  if (error?.error_description) lines.push(`  error_description: ${error.error_description}`);
  if (error?.status) lines.push(`  status: ${error.status}`);
  const cause = error?.cause;
  if (cause instanceof Response) {
    let text = '';
    try {
      text = await cause.clone().text();
    } catch {
      text = '(body already read)';
    }
    lines.push(`  cause: HTTP ${cause.status} ${cause.url}: ${snippet(text, 2000)}`);
  } else if (cause instanceof URLSearchParams) {
    lines.push(`  cause: ${cause.toString()}`);
  } else if (cause instanceof Error) {
    lines.push(`  cause: ${cause.message}`);
  } else if (cause !== undefined) {
    try {
      lines.push(`  cause: ${JSON.stringify(cause)}`);
    } catch {
      lines.push(`  cause: ${String(cause)}`);
    }
  }
  if (error?.stack) lines.push(error.stack);
  process.stderr.write(lines.join('\n') + '\n');
}

try {
  await main();
  process.exit(0);
} catch (error) {
  await report(error);
  process.exit(1);
}
