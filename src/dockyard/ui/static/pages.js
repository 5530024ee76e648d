// The pages: each renders into `main` from the registry, a page at a time.

import { AuthError, checkReference, describe, isIndex, mapLimited, platformOf } from "./api.js";
import {
  commandLine,
  confirmDialog,
  facts,
  formatSize,
  formatTime,
  h,
  shortDigest,
  table,
} from "./dom.js";

const PAGE_SIZE = 50;
const REFERRER_DEPTH = 4;

/** "#/r/team/app?last=x" for the route ("r", "team/app") and query {last: "x"}. */
export function link(kind, path, query = {}) {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v));
  const search = params.toString();
  return `#/${kind ? kind + "/" : ""}${path || ""}${search ? "?" + search : ""}`;
}

function pager(kind, path, query, next) {
  return h(
    "nav",
    { class: "pager" },
    query.last ? h("a", { href: link(kind, path, { ...query, last: "" }), class: "first" }, "« First page") : null,
    next ? h("a", { href: link(kind, path, { ...query, last: next }), class: "next" }, "Next page »") : null,
  );
}

function breadcrumbs(...parts) {
  return h(
    "nav",
    { class: "crumbs" },
    h("a", { href: "#/" }, "Repositories"),
    parts.map(([text, href]) => [" / ", href ? h("a", { href }, text) : h("span", {}, text)]),
  );
}

/**
 * A `last` that sorts before every name starting with `prefix`, whether the listing
 * orders names as strings or, as distribution's catalog does, component by component
 * (names use [a-z0-9._/-], and "~" sorts after all of them).
 */
function before(prefix) {
  if (prefix.endsWith("/")) return prefix.slice(0, -1);
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last - 1) + "~";
}

export async function repositoriesPage(registry, main, query) {
  const q = (query.get("q") || "").trim().toLowerCase();
  const last = query.get("last") || (q ? before(q) : "");
  const search = h(
    "form",
    { class: "search", role: "search" },
    h("input", { name: "q", type: "search", value: q, placeholder: "Repository name starts with…", "aria-label": "Search repositories" }),
    h("button", { type: "submit" }, "Search"),
  );
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = link("", "", { q: search.q.value.trim() });
  });
  main.replaceChildren(h("h1", {}, "Repositories"), search);
  let page;
  try {
    page = await registry.repositories(PAGE_SIZE, last);
  } catch (error) {
    if (!(error instanceof AuthError) || !q || !registry.user) throw error;
    // Without the catalog scope a user may still open a repository it may pull.
    main.append(h("p", {}, error.message, " ", h("a", { href: link("r", q) }, `Open ${q}`)));
    return;
  }
  let items = page.items;
  let next = page.next;
  if (q) {
    // Past the prefix in either order: no more matches on later pages.
    if (items.some((r) => r.name.slice(0, q.length) > q)) next = null;
    items = items.filter((r) => r.name.startsWith(q));
  }
  if (!items.length) {
    main.append(h("p", { class: "empty" }, q ? `No repository starts with “${q}”.` : "No repositories yet."));
  } else {
    main.append(
      table(
        ["Repository", "Tags", "Size"],
        items.map((r) => ({
          attrs: { "data-repository": r.name },
          cells: [h("a", { href: link("r", r.name) }, r.name), r.tags ?? "unknown", formatSize(r.size)],
        })),
        { class: "repositories" },
      ),
    );
  }
  main.append(pager("", "", { q, last: query.get("last") || "" }, next));
}

async function deleteButton(registry, name, reference, what, after, label = "Delete") {
  if (!(await registry.mayDelete(name))) return null;
  const button = h("button", { type: "button", class: "danger delete", "data-reference": reference }, label);
  button.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete ${what} from ${name}?`, "Delete"))) return;
    button.disabled = true;
    try {
      await registry.deleteManifest(name, reference);
      after();
    } catch (error) {
      button.replaceWith(h("span", { class: "error" }, error.message));
    }
  });
  return button;
}

export async function tagsPage(registry, main, name, query, rerender) {
  const last = query.get("last") || "";
  main.replaceChildren(breadcrumbs([name]), h("h1", {}, name));
  checkReference(name);
  const [page, summary] = await Promise.all([
    registry.tags(name, PAGE_SIZE, last),
    registry.repositorySummary(name).catch(() => null),
  ]);
  if (summary) {
    main.append(facts([["Tags", summary.tags ?? null], ["Size", summary.size != null ? formatSize(summary.size) : null]]));
  }
  if (!page.items.length) {
    main.append(h("p", { class: "empty" }, "No tags."));
    return;
  }
  const host = location.host;
  main.append(commandLine(`docker pull ${host}/${name}:${page.items[0]}`));
  const rows = page.items.map((tag) => {
    const cells = [h("a", { href: link("m", `${name}/${tag}`) }, tag), "…", "…", "…", "…", ""];
    return { attrs: { "data-tag": tag }, cells };
  });
  const list = table(["Tag", "Digest", "Pushed", "Size", "Platforms", ""], rows, { class: "tags" });
  main.append(list, pager("r", name, { last }, page.next));
  const body = list.tBodies[0];
  await mapLimited(page.items, 6, async (tag, i) => {
    const cells = body.rows[i].cells;
    try {
      const manifest = await registry.manifest(name, tag);
      cells[1].replaceChildren(h("a", { href: link("m", `${name}/${manifest.digest}`), title: manifest.digest }, shortDigest(manifest.digest)));
      const info = await describe(registry, name, manifest);
      cells[2].textContent = formatTime(info.created);
      cells[3].textContent = formatSize(info.size);
      // An artifact has no platform: its type says what it is.
      const artifactType = manifest.body.artifactType;
      cells[4].replaceChildren(info.platforms.join(", ") || (artifactType ? h("span", { class: "muted" }, artifactType) : "—"));
      const button = await deleteButton(registry, name, tag, `tag ${tag}`, rerender);
      if (button) cells[5].replaceChildren(button);
    } catch (error) {
      cells[1].replaceChildren(h("span", { class: "error" }, error.message));
    }
  });
}

function annotations(values) {
  const entries = Object.entries(values || {});
  if (!entries.length) return null;
  return [h("h2", {}, "Annotations"), table(["Key", "Value"], entries.map(([k, v]) => ({ cells: [k, v] })), { class: "annotations" })];
}

async function referrerTree(registry, name, digest, depth) {
  const referrers = await registry.referrers(name, digest);
  if (!referrers.length) return null;
  const groups = new Map();
  for (const r of referrers) {
    const type = r.artifactType || r.mediaType || "unknown";
    if (!groups.has(type)) groups.set(type, []);
    groups.get(type).push(r);
  }
  const items = [];
  for (const [type, members] of [...groups].sort()) {
    const children = await Promise.all(
      members.map(async (r) => {
        const below = depth > 1 ? await referrerTree(registry, name, r.digest, depth - 1).catch(() => null) : null;
        const created = r.annotations?.["org.opencontainers.image.created"];
        return h(
          "li",
          { "data-digest": r.digest },
          h("a", { href: link("m", `${name}/${r.digest}`) }, shortDigest(r.digest)),
          ` ${formatSize(r.size)}`,
          created ? ` · ${formatTime(created)}` : null,
          below,
        );
      }),
    );
    items.push(h("li", { class: "artifact-type" }, h("span", { class: "type" }, type), h("ul", {}, children)));
  }
  return h("ul", { class: "referrers" }, items);
}

export async function manifestPage(registry, main, name, reference, afterDelete) {
  main.replaceChildren(breadcrumbs([name, link("r", name)], [reference.includes(":") ? shortDigest(reference) : reference]));
  checkReference(name, reference);
  const manifest = await registry.manifest(name, reference);
  const body = manifest.body;
  const host = location.host;
  const byDigest = `${host}/${name}@${manifest.digest}`;
  const byTag = reference.includes(":") ? null : `${host}/${name}:${reference}`;
  main.append(
    h("h1", {}, `${name}${byTag ? ":" + reference : "@" + shortDigest(manifest.digest)}`),
    h("div", { class: "pulls" }, [byTag, byDigest].filter(Boolean).flatMap((ref) => [commandLine(`docker pull ${ref}`), commandLine(`podman pull ${ref}`)])),
  );
  const info = await describe(registry, name, manifest);
  main.append(
    facts([
      ["Digest", h("code", { class: "digest" }, manifest.digest)],
      ["Media type", manifest.mediaType],
      ["Artifact type", body.artifactType || null],
      ["Size", formatSize(info.size)],
      ["Created", formatTime(info.created)],
      ["Platforms", info.platforms.join(", ") || null],
      ["Subject", body.subject ? h("a", { href: link("m", `${name}/${body.subject.digest}`) }, shortDigest(body.subject.digest)) : null],
    ]),
  );
  const button = await deleteButton(registry, name, manifest.digest, `manifest ${shortDigest(manifest.digest)} and every tag pointing at it`, afterDelete, "Delete manifest");
  if (button) main.append(h("p", {}, button));
  if (isIndex(manifest)) {
    main.append(
      h("h2", {}, "Manifests"),
      table(
        ["Digest", "Platform", "Media type", "Size"],
        (body.manifests || []).map((m) => ({
          attrs: { "data-digest": m.digest },
          cells: [h("a", { href: link("m", `${name}/${m.digest}`) }, shortDigest(m.digest)), platformOf(m) || m.artifactType || "—", m.mediaType, formatSize(m.size)],
        })),
        { class: "children" },
      ),
    );
  } else {
    if (body.config) {
      main.append(
        h("h2", {}, "Config"),
        facts([
          ["Digest", h("code", {}, body.config.digest)],
          ["Media type", body.config.mediaType],
          ["Size", formatSize(body.config.size)],
        ]),
      );
    }
    const layers = body.layers || (body.fsLayers || []).map((l) => ({ digest: l.blobSum }));
    main.append(
      h("h2", {}, "Layers"),
      table(
        ["#", "Digest", "Media type", "Size"],
        layers.map((l, i) => ({ attrs: { "data-digest": l.digest }, cells: [String(i + 1), h("code", { title: l.digest }, shortDigest(l.digest)), l.mediaType || "—", formatSize(l.size)] })),
        { class: "layers" },
      ),
    );
  }
  main.append(...(annotations(body.annotations) || []));
  const referrers = h("section", { class: "referrers-section" }, h("h2", {}, "Referrers"), h("p", { class: "loading" }, "Loading…"));
  main.append(referrers);
  try {
    const tree = await referrerTree(registry, name, manifest.digest, REFERRER_DEPTH);
    referrers.lastChild.replaceWith(tree || h("p", { class: "empty" }, "None."));
  } catch (error) {
    referrers.lastChild.replaceWith(h("p", { class: "error" }, error.message));
  }
}

export function loginPage(registry, main, message, done) {
  const form = h(
    "form",
    { class: "login" },
    h("h1", {}, "Sign in"),
    h("p", { class: "notice" }, message),
    h("label", {}, "User name", h("input", { name: "user", autocomplete: "username", required: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    registry.signIn(form.user.value, form.password.value);
    done();
  });
  main.replaceChildren(form);
  if (registry.user) main.append(openRepository());
}

/** For a user who may not list the catalog: go to a repository it may pull, by name. */
function openRepository() {
  const form = h(
    "form",
    { class: "open-repository" },
    h("label", {}, "Or open a repository by name", h("input", { name: "repository", required: true, placeholder: "team/app" })),
    h("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = link("r", form.repository.value.trim());
  });
  return form;
}
