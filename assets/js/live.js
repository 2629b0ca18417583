// The live socket (DESIGN.md §6): every (re)connect resumes after the newest room event shown,
// every close is answered by its code, and the header says while the connection is down.
//
// This must run before htmx connects (at DOMContentLoaded): module scripts run in document
// order with the deferred htmx and ws scripts, after them and before DOMContentLoaded.

/**
 * The newest room event shown: the largest `data-seq` in #messages (the newest message), or
 * #room-cursor when an edit or delete came after it (a change takes a seq but adds no message).
 */
function lastSeq() {
  const newest = document.querySelector("#messages > article:last-of-type");
  const cursor = document.querySelector("#room-cursor");
  return Math.max(0, +(newest?.dataset.seq ?? 0), +(cursor?.value ?? 0));
}

// The ws extension replays nothing and reuses the URL captured at first connect, so every
// (re)connect asks for what came after the newest event shown. (A cursor sent in a first
// frame would arrive after the server had already replayed from the stale URL: duplicates.)
htmx.createWebSocket = (url) => {
  const u = new URL(url, location.href);
  u.searchParams.set("after", lastSeq());
  return new WebSocket(u);
};

// Full-jitter backoff, capped at 10 s.
htmx.config.wsReconnectDelay = (n) => Math.random() * Math.min(10000, 500 * 2 ** n);

/** Says `text` in the header's status line (composer.js writes there too). */
function status(text) {
  const line = document.querySelector("#room-status");
  if (line) line.textContent = text;
}

let downSince = 0; // when the connection went down (0: it is up)
let downTimer = 0;
let retries = 0; // failed connections since the last open
let refused = ""; // why the server refused the last upgrade, when it said so

// Nothing while connected, "reconnecting…" after 1 s down, "offline" after 30 s (UI.md).
function showDown() {
  const offline = (Date.now() - downSince) / 1000 > 30;
  const down = offline
    ? "offline: messages will appear when the connection is back"
    : "reconnecting…";
  status(refused || down);
}

// While the connection is down, what the page shows of presence is stale: natter.css mutes it
// under <html data-live="down">.
const page = document.documentElement.dataset;

document.addEventListener("htmx:wsOpen", () => {
  downSince = retries = 0;
  refused = "";
  clearInterval(downTimer);
  status("");
  delete page.live;
});

document.addEventListener("htmx:wsClose", (e) => {
  const code = e.detail.event.code;
  // natter's own close codes (DESIGN.md §6); a normal close is final.
  if (code === 4401) return location.assign("/"); // signed out: to the sign-in page
  if (code === 4409) return location.reload(); // too far behind to catch up
  if (code === 4404) return status("You left this room."); // no longer a member
  if (code === 1000) return;
  page.live = "down";
  if (!downSince) {
    downSince = Date.now();
    downTimer = setInterval(showDown, 1000);
  }
  // A refused upgrade (signed out or out of the room while away, too many tabs open) looks
  // like any failed connection: every third failure asks the socket's address over plain
  // HTTP, which answers what the upgrade got; the page reloads onto it or says it.
  if (++retries % 3 === 0) {
    fetch(e.target.getAttribute("ws-connect"))
      .then(async (r) => {
        if (r.status === 401 || r.status === 404) location.reload();
        // Too many tabs open, or too many wrong room codes: the answer says which.
        if (r.status === 429) refused = (await r.text()).trim();
        showDown();
      })
      .catch(() => {}); // unreachable too: asked again three failures later
  }
  // The ws extension retries by itself only after 1006/1011/1012/1013 (Caddy closes with
  // 1001, other proxies with other codes).
  if (![1006, 1011, 1012, 1013].includes(code)) {
    const delay = htmx.config.wsReconnectDelay(retries);
    setTimeout(() => e.detail.socketWrapper.reconnect(), delay);
  }
});
