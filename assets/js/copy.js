// Copy buttons: "Copy code" next to the room code, and "Copy link" on each message (its
// permalink, as an absolute URL). Hidden in the page, shown only where the clipboard API exists
// (not without JS, nor outside a secure context); messages that arrive later are shown too.

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

function reveal(root) {
  if (!root.querySelectorAll) return;
  for (const button of root.querySelectorAll(COPY)) button.hidden = !navigator.clipboard;
}

document.addEventListener("DOMContentLoaded", () => reveal(document));
document.addEventListener("htmx:load", (e) => reveal(e.detail.elt));
