// The router: the part of the URL after "#" picks the page.
//   #/                      repositories (?q= prefix search, ?last= paging)
//   #/r/<name>              a repository's tags (?last= paging)
//   #/m/<name>/<reference>  a manifest by tag or digest, with its referrers

import { AuthError, Registry } from "./api.js";
import { h } from "./dom.js";
import { link, loginPage, manifestPage, repositoriesPage, tagsPage } from "./pages.js";

const main = document.querySelector("main");
const account = document.querySelector("#account");

function renderAccount(registry) {
  if (registry.auth === "none") return account.replaceChildren();
  if (!registry.user) return account.replaceChildren(h("span", {}, "Not signed in"));
  const out = h("button", { type: "button", class: "secondary", id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => {
    registry.signOut();
    route(registry);
  });
  account.replaceChildren(h("span", { id: "user" }, `Signed in as ${registry.user}`), " ", out);
}

async function route(registry) {
  renderAccount(registry);
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search] = hash.split("?", 2);
  const query = new URLSearchParams(search || "");
  const again = () => route(registry);
  main.setAttribute("aria-busy", "true");
  delete main.dataset.shown;
  try {
    if (path.startsWith("r/")) {
      await tagsPage(registry, main, path.slice(2), query, again);
    } else if (path.startsWith("m/")) {
      const rest = path.slice(2);
      const cut = rest.lastIndexOf("/");
      const name = rest.slice(0, cut);
      await manifestPage(registry, main, name, rest.slice(cut + 1), () => {
        location.hash = link("r", name);
      });
    } else {
      await repositoriesPage(registry, main, query);
    }
  } catch (error) {
    if (error instanceof AuthError && registry.auth !== "none") {
      loginPage(registry, main, error.message, again);
    } else {
      main.append(h("p", { class: "error", role: "alert" }, error.message));
    }
  } finally {
    main.removeAttribute("aria-busy");
    main.dataset.shown = location.hash; // the page drawn: what tests wait for
  }
}

async function start() {
  const response = await fetch("config.json", { cache: "no-store" });
  const registry = new Registry(await response.json());
  addEventListener("hashchange", () => route(registry));
  await route(registry);
}

start();
