// Mention completion: typing "@" in the composer offers the room's members (read from the
// member list, #members, which the page always has), filtered as the name is typed. The
// textarea becomes an ARIA combobox (aria-expanded, aria-activedescendant) whose listbox
// floats above it. Up/Down move, Enter or Tab insert "@name ", Escape closes; a click picks.
// Without JavaScript, typing the name does the same: mentions are found in the text itself.

const LIST_ID = "mention-list";
const MOST = 8;
/** "@" and what follows it up to the caret, when that can still become a mention: at the
 *  start or after a character that cannot be part of an address or a word (as on the server). */
const QUERY = /(?:^|[^\p{L}\p{N}_.\-@/+=&%])@([A-Za-z0-9][A-Za-z0-9_.-]{0,23})?$/u;

let shown = []; // the names offered, in order
let active = -1; // the index of the highlighted one (-1: none)

const box = () => document.querySelector("#composer-body");
const list = () => document.getElementById(LIST_ID);

/** Marks the composer as a combobox and gives it its (hidden) listbox; again after htmx
 *  replaces the composer. */
function setup() {
  const textarea = box();
  if (!textarea || list()) return;
  const ul = document.createElement("ul");
  ul.id = LIST_ID;
  ul.className = "mention-list";
  ul.setAttribute("role", "listbox");
  ul.setAttribute("aria-label", "Members to mention");
  ul.hidden = true;
  textarea.form.append(ul);
  textarea.setAttribute("role", "combobox");
  textarea.setAttribute("aria-autocomplete", "list");
  textarea.setAttribute("aria-controls", LIST_ID);
  textarea.setAttribute("aria-expanded", "false");
  textarea.removeAttribute("aria-activedescendant");
}

/** The room's members (present ones: a departed member's entry is hidden), online ones
 *  first, then by name (the list's own order depends on how its entries arrived). */
function members() {
  const names = [];
  for (const li of document.querySelectorAll("#members li.member:not([hidden])")) {
    const name = li.querySelector(".member-name")?.textContent.trim();
    const id = li.id.replace(/^member-/, "");
    if (name && id) names.push({ id, name, online: li.dataset.online === "true" });
  }
  const key = (m) => m.name.toLowerCase();
  return names.sort((a, b) => b.online - a.online || (key(a) < key(b) ? -1 : 1));
}

/** The "@query" before the caret, if the caret ends one: [start index of "@", typed name]. */
function query(textarea) {
  if (textarea.selectionStart !== textarea.selectionEnd) return null;
  const before = textarea.value.slice(0, textarea.selectionStart);
  const m = QUERY.exec(before);
  if (!m) return null;
  const typed = m[1] ?? "";
  return [before.length - typed.length - 1, typed];
}

function close() {
  const ul = list();
  if (ul) {
    ul.hidden = true;
    ul.replaceChildren();
  }
  shown = [];
  active = -1;
  const textarea = box();
  if (textarea) {
    textarea.setAttribute("aria-expanded", "false");
    textarea.removeAttribute("aria-activedescendant");
  }
}

function highlight(index) {
  active = index;
  const textarea = box();
  for (const [i, li] of [...list().children].entries()) {
    li.setAttribute("aria-selected", String(i === active));
    if (i === active) {
      textarea.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    }
  }
  if (active < 0) textarea.removeAttribute("aria-activedescendant");
}

/** Offers the members whose names start with what is typed after "@", or closes. */
function update() {
  setup();
  const textarea = box();
  const q = textarea && query(textarea);
  if (!q) return close();
  const typed = q[1].toLowerCase();
  const found = members()
    .filter((m) => m.name.toLowerCase().startsWith(typed))
    .slice(0, MOST);
  if (found.length === 0) return close();
  const ul = list();
  const same = found.length === shown.length && found.every((m, i) => m.name === shown[i].name);
  if (same && !ul.hidden) return;
  shown = found;
  ul.replaceChildren(
    ...found.map((m) => {
      const li = document.createElement("li");
      li.id = `mention-option-${m.id}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.dataset.name = m.name;
      li.textContent = m.name;
      return li;
    }),
  );
  ul.hidden = false;
  textarea.setAttribute("aria-expanded", "true");
  highlight(-1);
}

/** Replaces the "@query" before the caret with "@name ". */
function complete(name) {
  const textarea = box();
  const q = query(textarea);
  close();
  if (!q) return;
  const [start] = q;
  const end = textarea.selectionStart;
  textarea.setRangeText(`@${name} `, start, end, "end");
  textarea.focus();
}

document.addEventListener("input", (e) => {
  if (e.target.id === "composer-body") update();
});

// Moving the caret may leave (or enter) a name.
const CARET_KEYS = ["ArrowLeft", "ArrowRight", "Home", "End"];
document.addEventListener("keyup", (e) => {
  if (e.target.id === "composer-body" && CARET_KEYS.includes(e.key)) update();
});
document.addEventListener("click", (e) => {
  if (e.target.id === "composer-body") update();
});

// Captured before composer.js sees the key: while the list is open, Enter picks a name
// instead of sending, and Escape closes the list instead of leaving the composer.
document.addEventListener(
  "keydown",
  (e) => {
    if (e.target.id !== "composer-body" || shown.length === 0 || e.isComposing) return;
    let handled = true;
    if (e.key === "ArrowDown") highlight((active + 1) % shown.length);
    else if (e.key === "ArrowUp") highlight(active <= 0 ? shown.length - 1 : active - 1);
    else if ((e.key === "Enter" || e.key === "Tab") && !e.shiftKey) {
      complete(shown[Math.max(active, 0)].name);
    }
    else if (e.key === "Escape") close();
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  },
  true,
);

// A pointer picks without taking the focus from the composer.
document.addEventListener("mousedown", (e) => {
  if (e.target.closest(`#${LIST_ID} [role=option]`)) e.preventDefault();
});
document.addEventListener("click", (e) => {
  const option = e.target.closest(`#${LIST_ID} [role=option]`);
  if (option) complete(option.dataset.name);
});

document.addEventListener("focusout", (e) => {
  if (e.target.id === "composer-body") close();
});

document.addEventListener("DOMContentLoaded", setup);
document.addEventListener("htmx:load", setup);
