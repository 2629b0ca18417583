// Copy buttons: "Copy code" next to the room code, and "Copy link" on each message (its
// permalink, as an absolute URL). Made here, only where the clipboard API exists (not without
// JS, nor outside a secure context), never in the page: a text browser ignores `hidden` and
// would show buttons that do nothing. Messages that arrive later get theirs too.

const COPY = "[data-copy], .copy-link";

document.addEventListener("click", (e) => {
  const button = e.target.closest(COPY);
  if (!button || !navigator.clipboard) return;
  const text = button.dataset.copy
    ? document.querySelector(button.dataset.copy).textContent.trim()
    : button.closest("article").querySelector("a.permalink").href;
  const label = (button.dataset.label ??= button.textContent);
  navigator.clipboard.writeText(text).then(() => {
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1500);
  });
});

function button(className, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  return b;
}

/** Adds the copy buttons under (or at) `root` that are not there yet. */
function addButtons(root) {
  if (!navigator.clipboard || !root.querySelectorAll) return;
  const code = root.querySelector("#room-code");
  if (code && !code.nextElementSibling?.matches("[data-copy]")) {
    const copy = button("button small copy-button", "Copy code");
    copy.dataset.copy = "#room-code";
    code.after(copy);
  }
  const actions = [...root.querySelectorAll(".message-actions")];
  if (root.matches(".message-actions")) actions.push(root);
  for (const place of actions) {
    if (!place.querySelector(".copy-link")) place.prepend(button("copy-link", "Copy link"));
  }
}

document.addEventListener("DOMContentLoaded", () => addButtons(document.body));
document.addEventListener("htmx:load", (e) => addButtons(e.detail.elt));
