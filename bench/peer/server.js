// node-oidc-provider configured like our provider, for `make bench` (bench/README.md).
//
// The same client (id, secret, redirect URI, grant types, scopes, client_secret_basic), RS256
// signing (an RS256 and an ES256 key generated at start, as our JWKS publishes both), JWT
// access tokens (RFC 9068 format through a resource indicator), refresh tokens issued to a
// client allowed the refresh_token grant and rotated on every use, introspection, revocation,
// client credentials, userinfo; a login interaction that looks the account up in a shared
// store and checks an argon2id hash made with our parameters; consent granted at once, as for
// our trusted client. State lives in Redis (redis_adapter.js), shared by all workers.
//
// Configuration by environment: PEER_PORT, PEER_ISSUER, PEER_WORKERS (cluster size; 1 = one
// process), PEER_REDIS_URL, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, BENCH_REDIRECT_URI,
// BENCH_USER, BENCH_PASSWORD, BENCH_USER_NAME, ARGON2_MEMORY_KIB, ARGON2_TIME_COST,
// ARGON2_PARALLELISM, BENCH_RESOURCE. Prints "ready <pid>" once every worker listens.

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import process from 'node:process';

import argon2 from 'argon2';
import Redis from 'ioredis';
import Provider, { errors } from 'oidc-provider';

import { makeAdapter } from './redis_adapter.js';

const env = process.env;
const PORT = Number(env.PEER_PORT || 5802);
const ISSUER = env.PEER_ISSUER || `http://127.0.0.1:${PORT}`;
const WORKERS = Number(env.PEER_WORKERS || 1);
const REDIS_URL = env.PEER_REDIS_URL || 'redis://127.0.0.1:6379/13';
const RESOURCE = env.BENCH_RESOURCE || 'urn:idp:bench:api';
const ARGON2 = {
  type: argon2.argon2id,
  memoryCost: Number(env.ARGON2_MEMORY_KIB || 19456),
  timeCost: Number(env.ARGON2_TIME_COST || 2),
  parallelism: Number(env.ARGON2_PARALLELISM || 1),
};
const PREFIX = 'peer:';

function redisClient() {
  return new Redis(REDIS_URL, { keyPrefix: PREFIX, enableAutoPipelining: true });
}

// -- primary: keys, the account, the workers ----------------------------------------------

async function prepare() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const jwks = {
    keys: [
      { ...rsa, kid: `rs-${randomUUID()}`, alg: 'RS256', use: 'sig' },
      { ...ec, kid: `es-${randomUUID()}`, alg: 'ES256', use: 'sig' },
    ],
  };
  const redis = redisClient();
  const login = (env.BENCH_USER || 'bench_user').toLowerCase();
  const account = {
    sub: randomUUID(),
    login_name: login,
    account_type: 'natural',
    name: env.BENCH_USER_NAME || '测试',
    updated_at: Math.floor(Date.now() / 1000),
    password_hash: await argon2.hash(env.BENCH_PASSWORD || 'Bench-pass1!', ARGON2),
  };
  await redis.set(`account:login:${login}`, JSON.stringify(account));
  await redis.set(`account:sub:${account.sub}`, JSON.stringify(account));
  await redis.quit();
  return {
    PEER_JWKS: JSON.stringify(jwks),
    PEER_COOKIE_KEY: randomBytes(32).toString('base64url'),
    PEER_DUMMY_HASH: await argon2.hash('dummy password for timing equality', ARGON2),
  };
}

// -- a worker: the provider --------------------------------------------------------------

const escapeHtml = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, message = '') {
  return `<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>统一用户登录 · 科学技术部政务服务平台</title>
</head>
<body>
<header><div>全国一体化政务服务平台</div><div>科学技术部政务服务平台 · 统一用户登录</div></header>
<main>
  <section>
    <h1>统一用户登录</h1>
    ${message ? `<p role="alert">${escapeHtml(message)}</p>` : ''}
    <form method="post" action="/interaction/${escapeHtml(uid)}/login" novalidate>
      <input name="account_type" type="hidden" value="natural">
      <label for="login_name">登录名</label>
      <input autocomplete="username" id="login_name" maxlength="64" name="login_name" required type="text" value="">
      <label for="password">密码</label>
      <input autocomplete="current-password" id="password" maxlength="128" name="password" required type="password" value="">
      <button type="submit">登录</button>
    </form>
  </section>
</main>
<footer><p>技术咨询电话: 科技部政务服务平台 010-88659000</p></footer>
</body>
</html>`;
}

async function readForm(req, limit = 2 * 1024 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new errors.InvalidRequest('request body too large');
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

function configuration(redis) {
  const clientId = env.BENCH_CLIENT_ID || 'bench';
  return {
    adapter: makeAdapter(redis),
    jwks: JSON.parse(env.PEER_JWKS),
    cookies: { keys: [env.PEER_COOKIE_KEY] },
    clients: [{
      client_id: clientId,
      client_secret: env.BENCH_CLIENT_SECRET || 'bench-secret',
      redirect_uris: [env.BENCH_REDIRECT_URI || 'http://127.0.0.1:9/cb'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    scopes: ['openid', 'profile', 'offline_access'],
    claims: {
      openid: ['sub', 'account_type'],
      profile: ['preferred_username', 'name', 'updated_at'],
    },
    async findAccount(ctx, sub) {
      const raw = await redis.get(`account:sub:${sub}`);
      if (!raw) return undefined;
      const account = JSON.parse(raw);
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            account_type: account.account_type,
            preferred_username: account.login_name,
            name: account.name,
            updated_at: account.updated_at,
          };
        },
      };
    },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // client_credentials tokens are for the API; elsewhere the client names the resource
        // (no resource: an opaque token for userinfo, as node-oidc-provider requires)
        async defaultResource(ctx, client, oneOf) {
          if (oneOf) return oneOf;
          if (ctx.oidc.params?.grant_type === 'client_credentials') return RESOURCE;
          return undefined;
        },
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(ctx, resource) {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: RESOURCE,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
    // Our provider issues a refresh token to every client allowed the grant, rotates it on
    // every use, and does not tie it to the browser session.
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    rotateRefreshToken: () => true,
    async expiresWithSession() {
      return false;
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      ClientCredentials: 3600,
      IdToken: 3600,
      RefreshToken: 30 * 86400,
      Interaction: 3600,
      Session: 28800,
      Grant: 30 * 86400,
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><meta charset="utf-8"><title>出错了</title><pre>${escapeHtml(out.error)}: ${escapeHtml(out.error_description)}</pre>`;
    },
  };
}

async function worker() {
  const redis = redisClient();
  const provider = new Provider(ISSUER, configuration(redis));
  const dummyHash = env.PEER_DUMMY_HASH;

  // The login interaction: GET shows the form, POST checks the password (argon2id) and, the
  // client being trusted, grants the requested scopes at once (no consent page).
  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(ctx.path);
    if (!match) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== match[1]) throw new errors.InvalidRequest('interaction mismatch');
    ctx.set('Cache-Control', 'no-store');
    if (ctx.method === 'GET' && !match[2]) {
      ctx.type = 'html';
      ctx.body = loginPage(details.uid);
      return undefined;
    }
    if (ctx.method !== 'POST' || !match[2]) return next();
    const form = await readForm(ctx.req);
    const login = String(form.login_name || '').normalize('NFKC').trim().toLowerCase();
    const raw = login ? await redis.get(`account:login:${login}`) : null;
    const account = raw ? JSON.parse(raw) : null;
    const ok = await argon2.verify(account ? account.password_hash : dummyHash, String(form.password || ''));
    if (!account || !ok || account.account_type !== form.account_type) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, '登录名或密码错误。');
      return undefined;
    }
    const { params } = details;
    const grant = new provider.Grant({ accountId: account.sub, clientId: params.client_id });
    grant.addOIDCScope(params.scope);
    if (params.resource) grant.addResourceScope(params.resource, 'api');
    const grantId = await grant.save();
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
      login: { accountId: account.sub, amr: ['pwd'] },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    ctx.redirect(returnTo);
    ctx.status = 303;
    return undefined;
  });

  await new Promise((resolve) => {
    provider.listen(PORT, '127.0.0.1', resolve);
  });
  if (process.send) process.send('listening');
  else console.log(`ready ${process.pid}`);
}

if (cluster.isPrimary && WORKERS > 1) {
  const prepared = await prepare();
  let listening = 0;
  for (let i = 0; i < WORKERS; i += 1) {
    const child = cluster.fork({ ...prepared, PEER_WORKER: String(i) });
    child.on('message', (message) => {
      if (message === 'listening' && (listening += 1) === WORKERS) console.log(`ready ${process.pid}`);
    });
  }
  cluster.on('exit', (child, code, signal) => {
    if (!process.exitCode && signal !== 'SIGTERM') {
      console.error(`peer worker ${child.process.pid} exited (${code ?? signal})`);
    }
  });
  const stop = () => {
    for (const child of Object.values(cluster.workers)) child.process.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else if (cluster.isPrimary) {
  Object.assign(env, await prepare());
  await worker();
} else {
  await worker();
}
