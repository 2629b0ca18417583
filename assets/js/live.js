// The live connection (DESIGN.md §6): every (re)connect resumes after the newest room event
// shown, every close is answered by its code, and the header says while the connection is down.
// A WebSocket first; a page whose first two sockets never open while their address answers
// plain HTTP (a proxy that strips upgrades) switches to Server-Sent Events, which carry the
// same fragments.
//
// This must run before htmx connects (at DOMContentLoaded): module scripts run in document
// order with the deferred htmx, ws and sse scripts, after them and before DOMContentLoaded.

/**
 * The newest room event shown: the largest `data-seq` in #messages (the newest message), or
 * #room-cursor when an edit or delete came after it (a change takes a seq but adds no message).
 */
function lastSeq() {
  const newest = document.querySelector("#messages > article:last-of-type");
  const cursor = document.querySelector("#room-cursor");
  return Math.max(0, +(newest?.dataset.seq ?? 0), +(cursor?.value ?? 0));
}

/**
 * `url` asking for what came after the newest event shown, at the room's code as the page
 * knows it now: a system line's frame swaps the heading, whose `data-code` is the new code
 * after the room's owner changed it (the old one no longer opens anything).
 */
function resumed(url) {
  const u = new URL(url, location.href);
  const code = document.querySelector("#room-heading")?.dataset.code;
  if (code) u.pathname = u.pathname.replace(/^\/rooms\/[^/]+\//, `/rooms/${code}/`);
  u.searchParams.set("after", lastSeq());
  return u;
}

let socketOpened = false; // whether a socket of this page ever opened
let socketsFailed = 0; // sockets that closed before one ever opened
let eventsInstead = false; // sockets cannot open here: the next connection is events

// The ws extension replays nothing and reuses the URL captured at first connect, so every
// (re)connect asks for what came after the newest event shown. (A cursor sent in a first
// frame would arrive after the server had already replayed from the stale URL: duplicates.)
htmx.createWebSocket = (url) => {
  if (eventsInstead) {
    useEvents(url);
    // The extension keeps retrying a socket whose element is on the page: it gets one that
    // never opens nor closes, so it waits for good.
    return Object.assign(new EventTarget(), { readyState: 3, OPEN: 1, close() {}, send() {} });
  }
  return new WebSocket(resumed(url));
};

// Full-jitter backoff, capped at 10 s.
htmx.config.wsReconnectDelay = (n) => Math.random() * Math.min(10000, 500 * 2 ** n);

/**
 * Switches the page to the room's events: a hidden element the sse extension connects, whose
 * `message` events htmx swaps (each element of a frame names its swap; the element itself
 * takes nothing).
 */
function useEvents(socketUrl) {
  const events = document.createElement("div");
  events.hidden = true;
  events.setAttribute("hx-ext", "sse");
  events.setAttribute("sse-connect", new URL(socketUrl).pathname.replace(/\/ws$/, "/events"));
  events.setAttribute("sse-swap", "message");
  events.setAttribute("hx-swap", "none");
  document.body.append(events);
  htmx.process(events);
}

// The sse extension reconnects a refused stream (a new EventSource, asked for what came after
// the newest event shown); the browser reconnects a stream that ended by itself, with the last
// event's id as Last-Event-ID, which the server prefers to the URL's stale `after`.
htmx.createEventSource = (url) => {
  const source = new EventSource(resumed(url));
  source.addEventListener("close", (e) => {
    // The code, and on a second line why (`removed`).
    const [code, reason = ""] = e.data.split("\n");
    // Final: the browser must not come back.
    if ([4401, 4404, 4409].includes(+code)) source.close();
    closed(+code, reason);
  });
  return source;
};

/** Says `text` in the header's status line (composer.js writes there too). */
function status(text) {
  const line = document.querySelector("#room-status");
  if (line) line.textContent = text;
}

let downSince = 0; // when the connection went down (0: it is up)
let downTimer = 0;
let retries = 0; // failed connections since the last open
let refused = ""; // why the server refused the last connection, when it said so

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

function up() {
  downSince = retries = 0;
  refused = "";
  clearInterval(downTimer);
  status("");
  delete page.live;
}

function down() {
  page.live = "down";
  if (!downSince) {
    downSince = Date.now();
    downTimer = setInterval(showDown, 1000);
  }
}

/** Answers natter's own close codes (DESIGN.md §6); whether the connection is over for good. */
function closed(code, reason) {
  if (code === 4401) location.assign("/"); // signed out: to the sign-in page
  else if (code === 4409) location.reload(); // too far behind to catch up
  else if (code === 4404 && reason === "removed") status("You were removed from this room.");
  else if (code === 4404) status("You left this room."); // no longer a member
  else return code === 1000; // a normal close is final
  return true;
}

// A refused connection (signed out or out of the room while away, too many tabs open) looks
// like any failed one: its address, asked over plain HTTP (every third failure), answers what
// the connection got; the page reloads onto it or says it. Returns the answer's status (0:
// unreachable too).
async function ask(url) {
  const asking = new AbortController(); // an answer of events is not read
  try {
    const r = await fetch(url, { signal: asking.signal });
    if (r.status === 401 || r.status === 404) location.reload();
    // Too many tabs open, or too many wrong room codes: the answer says which.
    if (r.status === 429) refused = (await r.text()).trim();
    showDown();
    return r.status;
  } catch {
    return 0;
  } finally {
    asking.abort();
  }
}

document.addEventListener("htmx:wsOpen", () => {
  socketOpened = true;
  up();
});

document.addEventListener("htmx:wsClose", (e) => {
  const code = e.detail.event.code;
  if (closed(code, e.detail.event.reason)) return;
  down();
  const url = e.target.getAttribute("ws-connect");
  const second = !socketOpened && ++socketsFailed === 2;
  if (++retries % 3 === 0 || second) {
    // Sockets that never open at an address that answers without an upgrade, as it does
    // (400) or as a proxy refusing upgrades does (403): the page switches to events.
    ask(url).then((s) => (eventsInstead ||= !socketOpened && (s === 400 || s === 403)));
  }
  // The ws extension retries by itself only after 1006/1011/1012/1013 (Caddy closes with
  // 1001, other proxies with other codes).
  if (![1006, 1011, 1012, 1013].includes(code)) {
    const delay = htmx.config.wsReconnectDelay(retries);
    setTimeout(() => e.detail.socketWrapper.reconnect(), delay);
  }
});

document.addEventListener("htmx:sseOpen", up);

document.addEventListener("htmx:sseError", (e) => {
  const source = e.detail.source;
  down();
  // Refused (not a stream): the extension tries again with backoff; meanwhile, ask why.
  if (source.readyState === EventSource.CLOSED && ++retries % 3 === 0) ask(source.url);
});
