// Small helpers to build the page. Text from the registry (names, annotations...) is
// only ever set as text, never parsed as HTML.

/** An element: h("a", {href: "#/"}, "text", child...). `on*` attributes add listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** 1536 -> "1.5 KiB"; null -> "unknown". */
export function formatSize(bytes) {
  if (typeof bytes !== "number") return "unknown";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** An RFC 3339 time as "2024-05-01 12:00 UTC"; "unknown" if missing or unreadable. */
export function formatTime(value) {
  const date = value ? new Date(value) : null;
  if (!date || Number.isNaN(date.getTime())) return "unknown";
  return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** "sha256:0123456789ab" (the first 12 hex digits). */
export function shortDigest(digest) {
  const [alg, hex] = String(digest).split(":");
  return hex ? `${alg}:${hex.slice(0, 12)}` : String(digest);
}

/** A command line with a button that copies it. */
export function commandLine(text) {
  const code = h("code", { class: "command" }, text);
  const button = h("button", { type: "button", class: "copy", title: "Copy" }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      // No clipboard (a page not served over https): select the text for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
  });
  return h("div", { class: "pull" }, code, button);
}

/** A table: headers and rows of cells (strings or nodes). */
export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((row) => h("tr", row.attrs || {}, row.cells.map((c) => h("td", {}, c))))),
  );
}

/** A definition list of [term, value] pairs (values null are left out). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

/** Asks before a destructive action; resolves true if the user confirmed. */
export function confirmDialog(message, action) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm" },
      h("p", {}, message),
      h(
        "form",
        { method: "dialog" },
        h("button", { value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { value: "confirm", class: "danger" }, action),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
