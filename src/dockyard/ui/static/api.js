// The registry as the browser sees it: /v2/ (and /dockyard/v1/ where it exists),
// with the user's credentials. Nothing here touches the page.
//
// Credentials: with htpasswd ("basic") every request carries `Authorization: Basic`;
// with token auth ("token") a request that is challenged gets a token for the scope
// the challenge names, from <prefix>/ui/token (the server relays it to the realm),
// with the user's Basic credentials if signed in, anonymously otherwise. Credentials
// live in sessionStorage (gone when the tab closes), tokens in memory.
// Every request sends `X-Requested-With`, so the registry leaves out a Basic challenge
// that would make the browser open its own login dialog.

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
const INDEX_TYPES = new Set([MANIFEST_TYPES[0], MANIFEST_TYPES[2]]);
// The grammar of the distribution spec: anything else never becomes part of a URL path.
const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const REFERENCE = /^(?:[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$/;

/** Throws NAME_INVALID or MANIFEST_UNKNOWN for what cannot be a repository name or reference. */
export function checkReference(name, reference = "latest") {
  if (!NAME.test(name)) throw new ApiError(400, "NAME_INVALID", `“${name}” is not a repository name.`);
  if (!REFERENCE.test(reference)) throw new ApiError(400, "TAG_INVALID", `“${reference}” is not a tag or digest.`);
}
const CREDENTIALS_KEY = "dockyard.credentials";

/** The user must sign in (again), or lacks the access: the page shows the login form. */
export class AuthError extends Error {}

/** Any other refusal: status and the registry's first error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** `Bearer realm="..",service="..",scope=".."` as {scheme, params}. */
export function parseChallenge(value) {
  if (!value) return null;
  const space = value.indexOf(" ");
  const scheme = (space < 0 ? value : value.slice(0, space)).toLowerCase();
  const params = {};
  const re = /([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g;
  for (const m of value.slice(space + 1).matchAll(re)) params[m[1]] = m[2].replace(/\\(.)/g, "$1");
  return { scheme, params };
}

/** The claims of a JWT, or null if the token is not one. */
function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

async function errorOf(response) {
  try {
    const first = (await response.json()).errors[0];
    return new ApiError(response.status, first.code, first.message);
  } catch {
    return new ApiError(response.status, "", response.statusText);
  }
}

/** Runs `work` over `items` with at most `limit` at a time; results in order. */
export async function mapLimited(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export class Registry {
  constructor(config) {
    this.prefix = config.prefix; // ends with "/"
    this.auth = config.auth; // "none" | "basic" | "token"
    this.deleteEnabled = config.delete;
    this.tokens = new Map(); // scope -> token
    this.scopeOf = new Map(); // resource key -> scope last asked for it
    this.indexApi = undefined; // unknown until probed
    this.immutable = new Map(); // "repository@digest" -> promise of its content
  }

  /** `load()` once per digest: what a digest names never changes. */
  once(name, digest, load) {
    const key = `${name}@${digest}`;
    if (!this.immutable.has(key)) {
      if (this.immutable.size > 2000) this.immutable.clear();
      const promise = load();
      promise.catch(() => this.immutable.delete(key)); // a failure may be a passing one
      this.immutable.set(key, promise);
    }
    return this.immutable.get(key);
  }

  get user() {
    return this.credentials()?.user ?? null;
  }

  credentials() {
    const raw = sessionStorage.getItem(CREDENTIALS_KEY);
    return raw ? JSON.parse(raw) : null;
  }

  signIn(user, password) {
    sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify({ user, password }));
    this.forget();
  }

  signOut() {
    sessionStorage.removeItem(CREDENTIALS_KEY);
    this.forget();
  }

  /** Drop everything obtained as the previous user: the next one may see less. */
  forget() {
    this.tokens.clear();
    this.scopeOf.clear();
    this.immutable.clear();
    this.indexApi = undefined;
  }

  basic() {
    const c = this.credentials();
    if (!c) return null;
    const bytes = new TextEncoder().encode(`${c.user}:${c.password}`);
    return "Basic " + btoa(String.fromCharCode(...bytes));
  }

  /** A token for `scope` from the relay; AuthError if the realm refuses the user. */
  async token(scope) {
    if (this.tokens.has(scope)) return this.tokens.get(scope);
    const headers = { "X-Requested-With": "XMLHttpRequest" };
    const basic = this.basic();
    if (basic) headers.Authorization = basic;
    const query = scope.split(" ").map((s) => "scope=" + encodeURIComponent(s)).join("&");
    const response = await fetch(`${this.prefix}ui/token?${query}`, { headers });
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(basic ? "The user name or password is wrong." : "Please sign in to see this.");
    }
    if (!response.ok) throw await errorOf(response);
    const body = await response.json();
    const token = body.token || body.access_token;
    this.tokens.set(scope, token);
    return token;
  }

  /** Whether a token for `scope` grants `action` (true if the token cannot be read). */
  async tokenGrants(scope, action) {
    const claims = jwtClaims(await this.token(scope));
    if (!claims || !Array.isArray(claims.access)) return true;
    const [type, ...rest] = scope.split(":");
    const name = rest.slice(0, -1).join(":");
    return claims.access.some(
      (a) => a.type === type && a.name === name && (a.actions || []).some((x) => x === action || x === "*"),
    );
  }

  /**
   * fetch() of `path` (relative to the prefix) as the user. `key` names the resource
   * for token reuse (a repository name, "catalog"). Returns the Response when it is
   * ok, or when its status is in `allow`; throws AuthError or ApiError otherwise.
   */
  async request(path, { method = "GET", headers = {}, key = "", allow = [] } = {}) {
    const send = (authorization) => {
      const h = { "X-Requested-With": "XMLHttpRequest", ...headers };
      if (authorization) h.Authorization = authorization;
      return fetch(this.prefix + path, { method, headers: h, cache: "no-store" });
    };
    let authorization = null;
    if (this.auth === "basic") authorization = this.basic();
    const resource = `${method} ${key}`; // DELETE needs another scope than GET
    const known = this.scopeOf.get(resource);
    if (this.auth === "token" && known && this.tokens.has(known)) {
      authorization = "Bearer " + this.tokens.get(known);
    }
    let response = await send(authorization);
    if (response.status === 401 && this.auth === "token") {
      const challenge = parseChallenge(response.headers.get("WWW-Authenticate"));
      if (challenge && challenge.scheme === "bearer") {
        const scope = challenge.params.scope || "";
        this.scopeOf.set(resource, scope);
        this.tokens.delete(scope); // expired, or never asked for
        response = await send("Bearer " + (await this.token(scope)));
      }
    }
    if (response.status === 401 || response.status === 403) {
      if (!this.user) throw new AuthError("Please sign in to see this.");
      if (this.auth === "basic") throw new AuthError("The user name or password is wrong.");
      // A token was issued, but without the access asked for.
      throw new AuthError(`${this.user} may not see this; sign in as another user?`);
    }
    if (!response.ok && !allow.includes(response.status)) throw await errorOf(response);
    return response;
  }

  async json(path, options) {
    return (await this.request(path, options)).json();
  }

  /** Whether the user may delete from `name` (deletes on, and the user's access allows). */
  async mayDelete(name) {
    if (!this.deleteEnabled) return false;
    if (this.auth !== "token") return true;
    try {
      return await this.tokenGrants(`repository:${name}:delete`, "delete");
    } catch {
      return false;
    }
  }

  /** A page of names from `path` (?n=&last=): {items, next} (next: the `last` of the next page). */
  async page(path, field, n, last, key) {
    const query = `n=${n}` + (last ? `&last=${encodeURIComponent(last)}` : "");
    const response = await this.request(`${path}?${query}`, { key });
    const body = await response.json();
    const items = body[field] || [];
    const more = (response.headers.get("Link") || "").includes('rel="next"');
    const lastItem = items.length ? items[items.length - 1] : null;
    const lastName = lastItem && typeof lastItem === "object" ? lastItem.name : lastItem;
    return { items, next: more && lastName ? lastName : null };
  }

  /** Whether dockyard's index API answers (probed once; a 404 means it is absent). */
  async hasIndexApi() {
    if (this.indexApi === undefined) {
      const response = await this.request("dockyard/v1/repositories?n=1", {
        key: "catalog",
        allow: [404, 405],
      });
      this.indexApi = response.ok;
    }
    return this.indexApi;
  }

  /** A page of repositories: [{name, size?, tags?}] from the index API, else _catalog. */
  async repositories(n, last) {
    if (await this.hasIndexApi()) {
      const page = await this.page("dockyard/v1/repositories", "repositories", n, last, "catalog");
      page.items = page.items.map(summary);
      return page;
    }
    const page = await this.page("v2/_catalog", "repositories", n, last, "catalog");
    page.items = page.items.map((name) => ({ name }));
    return page;
  }

  /** The index API's summary of one repository, or null without that API. */
  async repositorySummary(name) {
    if (!(await this.hasIndexApi().catch(() => false))) return null;
    const response = await this.request(`dockyard/v1/repositories/${name}`, {
      key: name,
      allow: [404, 405],
    });
    return response.ok ? summary(await response.json()) : null;
  }

  tags(name, n, last) {
    return this.page(`v2/${name}/tags/list`, "tags", n, last, name);
  }

  /** {digest, mediaType, size, body} of a manifest by tag or digest. */
  manifest(name, reference) {
    if (!reference.includes(":")) return this.fetchManifest(name, reference);
    return this.once(name, reference, () => this.fetchManifest(name, reference));
  }

  async fetchManifest(name, reference) {
    const response = await this.request(`v2/${name}/manifests/${reference}`, {
      key: name,
      headers: { Accept: MANIFEST_TYPES.join(", ") },
    });
    const text = await response.text();
    const body = JSON.parse(text);
    const digest = response.headers.get("Docker-Content-Digest") || reference;
    const mediaType = body.mediaType || (response.headers.get("Content-Type") || "").split(";")[0];
    return { digest, mediaType, size: new TextEncoder().encode(text).length, body };
  }

  blobJson(name, digest) {
    return this.once(name, digest, () => this.json(`v2/${name}/blobs/${digest}`, { key: name }));
  }

  async referrers(name, digest) {
    const body = await this.json(`v2/${name}/referrers/${digest}`, { key: name });
    return body.manifests || [];
  }

  async deleteManifest(name, reference) {
    await this.request(`v2/${name}/manifests/${reference}`, { method: "DELETE", key: name });
    this.immutable.delete(`${name}@${reference}`);
  }
}

export function isIndex(manifest) {
  return INDEX_TYPES.has(manifest.mediaType) || Array.isArray(manifest.body.manifests);
}

/** A repository entry of the index API, whatever it calls its numbers. */
function summary(item) {
  if (typeof item === "string") return { name: item };
  const pick = (...keys) => keys.map((k) => item[k]).find((v) => typeof v === "number");
  return {
    name: item.name,
    size: pick("size", "total_size", "bytes", "size_bytes"),
    tags: pick("tag_count", "tags", "tagCount"),
    manifests: pick("manifest_count", "manifests"),
    pushed: item.pushed_at || item.last_push || item.pushed || null,
  };
}

/**
 * What a tag or manifest amounts to: {size, platforms, created} where size is the sum of
 * the image's config and layers (every child's for an index), platforms "os/arch"
 * strings, created the image config's `created` (the newest child's for an index).
 */
export async function describe(registry, name, manifest) {
  const body = manifest.body;
  if (isIndex(manifest)) {
    const children = body.manifests || [];
    const parts = await mapLimited(children, 4, async (child) => {
      try {
        return await describe(registry, name, await registry.manifest(name, child.digest));
      } catch {
        return { size: null, platforms: [], created: null };
      }
    });
    const sizes = parts.map((p) => p.size);
    const created = parts.map((p) => p.created).filter(Boolean).sort().pop() || null;
    const platforms = children.map(platformOf).filter(Boolean);
    return {
      size: sizes.every((s) => typeof s === "number") ? manifest.size + sizes.reduce((a, b) => a + b, 0) : null,
      platforms,
      created,
    };
  }
  const layers = body.layers || [];
  let size = manifest.size + layers.reduce((a, l) => a + (l.size || 0), 0);
  let created = null;
  let platforms = [];
  if (body.config && body.config.digest) {
    size += body.config.size || 0;
    if (/container\.image\.v1\+json|image\.config\.v1\+json/.test(body.config.mediaType || "")) {
      try {
        const config = await registry.blobJson(name, body.config.digest);
        created = config.created || null;
        if (config.os) platforms = [platformOf({ platform: config })];
      } catch {
        // An unreadable config leaves push time and platform unknown.
      }
    }
  } else if (body.schemaVersion === 1) {
    size = null; // schema1 carries no sizes
    platforms = body.architecture ? [body.architecture] : [];
  }
  created = created || body.annotations?.["org.opencontainers.image.created"] || null;
  return { size, platforms, created };
}

/** "os/arch[/variant]" of a descriptor's platform, or "" if it has none. */
export function platformOf(descriptor) {
  const p = descriptor.platform;
  if (!p || !p.os) return "";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}
