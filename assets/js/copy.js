// The "Copy code" button next to the room code: hidden in the page, shown only where the
// clipboard API exists (not without JS, nor outside a secure context).

document.addEventListener("click", (e) => {
  const button = e.target.closest("[data-copy]");
  if (!button || !navigator.clipboard) return;
  const text = document.querySelector(button.dataset.copy).textContent.trim();
  navigator.clipboard.writeText(text).then(() => {
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy code"), 1500);
  });
});

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.hidden = !navigator.clipboard;
  }
});
