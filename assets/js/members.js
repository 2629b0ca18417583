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
