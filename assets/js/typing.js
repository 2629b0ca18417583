// "ada is typing…": while the composer is typed in and the room's socket is open, the page
// tells the room at most every 3 s (the hidden #typing-signal form, sent up the socket by the
// ws extension); the server shows the line to the others for 6 s, or until the message comes.
// Over Server-Sent Events, or while reconnecting, nothing is said (a queued signal would
// arrive late and untrue).

const EVERY_MS = 3000;
let open = false; // whether the room's socket is open
let last = 0; // when the last signal went

document.addEventListener("htmx:wsOpen", () => (open = true));
document.addEventListener("htmx:wsClose", () => (open = false));

document.addEventListener("input", (e) => {
  if (e.target.id !== "composer-body" || !open || !e.target.value.trim()) return;
  const now = Date.now();
  if (now - last < EVERY_MS) return;
  last = now;
  htmx.trigger("#typing-signal", "natter:typing");
});
