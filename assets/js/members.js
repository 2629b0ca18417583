// Member entries are upserts: every entry arrives through <ul id="members"
// hx-swap-oob="beforeend"> (#members always exists; replacing by id would make htmx log an
// error for an entry not on the page). So before the append, the entry with the same id is
// removed; someone not listed is added, unless the list is capped (big rooms) and they are
// offline. (A whole fresh list, sent on every connect, replaces the old one as it is.)

document.addEventListener("htmx:oobBeforeSwap", (e) => {
  const list = e.detail.target;
  const items = e.detail.fragment;
  if (list.id !== "members" || items.firstElementChild?.tagName !== "LI") return;
  for (const li of items.querySelectorAll("li[id]")) {
    const old = document.getElementById(li.id);
    if (old) old.remove();
    else if (list.hasAttribute("data-capped") && li.dataset.online !== "true") li.remove();
  }
});

// The messages (and system lines) of the member a line is by, in the page.
function theirs(line) {
  const author = CSS.escape(line.dataset.author);
  return document.querySelectorAll(`#messages article[data-author="${author}"]`);
}

// A member changed their username: the system line saying so (live, replayed on a resume, or
// in the page) carries `data-renamed` and their new name, and their earlier messages here take
// it, as a fresh page load would show them.
function renamed(line) {
  const name = line.querySelector(".author")?.textContent;
  if (!name) return;
  for (const article of theirs(line)) {
    const author = article.querySelector(".author");
    if (author) author.textContent = name;
    const dm = article.querySelector("a.dm-link");
    if (dm) {
      dm.href = "/dm/" + encodeURIComponent(name);
      const hidden = dm.querySelector(".visually-hidden");
      if (hidden) hidden.textContent = " with " + name;
    }
  }
}

// A member deleted their account: the line saying so carries `data-gone` ("deleted user", the
// name their messages have from now on). Their messages here, and the line itself, take it and
// lose the "Message privately" link (nobody to write to), as a fresh page load shows them.
function gone(line) {
  for (const article of theirs(line)) {
    const author = article.querySelector(".author");
    if (author) author.textContent = line.dataset.gone;
    article.querySelector("a.dm-link")?.remove();
  }
}

document.addEventListener("htmx:load", (e) => {
  const elt = e.detail.elt;
  if (elt.matches?.("article[data-renamed]")) renamed(elt);
  for (const line of elt.querySelectorAll?.("article[data-renamed]") ?? []) renamed(line);
  if (elt.matches?.("article[data-gone]")) gone(elt);
  for (const line of elt.querySelectorAll?.("article[data-gone]") ?? []) gone(line);
});
