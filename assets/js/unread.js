// Unread (views/unread.rs): the room rail's counts of other rooms move with live activity
// (chat/activity.rs), the tab title shows the total, the room opens at its "New messages"
// divider, and a reader at the bottom of a live room saves how far they have read.

const room = document.querySelector(".room[data-room]");
let rail = document.querySelector(".rooms-rail");

/** A count as shown: "99+" from 100 on (counts stop there). */
const display = (n) => (n >= 100 ? "99+" : String(n));

/** The CSRF token htmx sends with every request (layout.rs puts it on <body>). */
function csrf() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"] ?? "";
  } catch {
    return "";
  }
}

// ---------- This room: what has arrived since the reader last read ----------

let read = room ? +room.dataset.read : 0; // saved up to here (the page saved what it showed)
const me = room?.dataset.me;
const shown = () => [...document.querySelectorAll("#messages article[data-seq]")];
const newest = () => Math.max(read, ...shown().map((a) => +a.dataset.seq));
const unreadHere = () =>
  shown().filter((a) => +a.dataset.seq > read && a.dataset.author !== me).length;

// ---------- The title: every room's count ----------

const baseTitle = document.title.replace(/^\(\d+\+?\) /, "");

function showTitle() {
  let total = unreadHere();
  for (const badge of rail?.querySelectorAll("a:not([aria-current]) .unread-count") ?? []) {
    total += +badge.dataset.count;
  }
  document.title = total > 0 ? `(${display(total)}) ${baseTitle}` : baseTitle;
}

// ---------- Other rooms: live activity ----------

/**
 * Counts new messages (`[{id, count, first, last}]`: how many others wrote in the room, the
 * first and last seq) above what each rail entry counted already.
 */
function apply(rooms) {
  for (const { id, count, first, last, mentions } of rooms) {
    const link = rail?.querySelector(`a[data-room-id="${CSS.escape(id)}"]`);
    if (!link) refreshRail();
    if (!link || link.hasAttribute("aria-current")) continue;
    const known = +link.dataset.seq;
    if (last <= known) continue;
    const fresh = known < first ? count : Math.min(count, last - known);
    const named = Math.min(mentions, fresh);
    link.dataset.seq = last;
    // As the reader wants to hear about the room: every message, mentions only, or nothing.
    const badge = link.querySelector(".unread-count");
    const counted = { all: fresh, mentions: named }[badge.dataset.notify] ?? 0;
    if (!counted) continue;
    const n = Math.min(100, +badge.dataset.count + counted);
    badge.dataset.count = n;
    badge.querySelector(".unread-number").textContent = display(n);
    badge.querySelector(".unread-label").textContent = " unread"; // empty at zero (unread.rs)
    if (named) {
      badge.classList.add("mentioned"); // the stronger mark: something mentions the reader
      const said = badge.querySelector(".unread-mentions");
      const before = +(said.textContent.match(/\d+/)?.[0] ?? 0);
      said.textContent = `, ${display(Math.min(100, before + named))} mention you`;
    }
    badge.hidden = false;
    link.setAttribute("href", `${link.pathname}#unread`); // opens at its first unread message
  }
  showTitle();
}

let refreshing = false;

/**
 * Activity in a room the rail does not list (a direct conversation that just began, or one I
 * had closed): the rail again, as the server renders it now, counts included.
 */
function refreshRail() {
  if (refreshing || !room || !rail) return;
  refreshing = true;
  fetch(`/rooms/${room.dataset.room}/rail`, { headers: { "HX-Request": "true" } })
    .then((r) => (r.ok ? r.text() : ""))
    .then((html) => {
      const fresh = new DOMParser().parseFromString(html, "text/html").querySelector(".rooms-rail");
      if (!fresh) return;
      rail.replaceWith(fresh);
      rail = fresh;
      showTitle();
    })
    .catch(() => {}) // the rail stays as it was; the next page load lists the room
    .finally(() => (refreshing = false));
}

// One socket per browser gets the activity (the server sends it to one): it passes it on to
// the browser's other natter tabs.
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("natter-activity") : null;
if (tabs) tabs.onmessage = (e) => apply(e.data);

// Activity frames are not for htmx to swap: read them here instead (from the socket's
// message, or the server-sent event's data).
function activity(e) {
  const text = e.detail.message ?? e.detail.data;
  if (typeof text !== "string" || !text.startsWith("<template data-activity")) return;
  e.preventDefault();
  const runs = new DOMParser().parseFromString(text, "text/html")
    .querySelector("template")?.dataset.activity ?? "";
  const rooms = runs.split(" ").filter(Boolean).map((run) => {
    const [id, count, first, last, mentions] = run.split(":");
    return { id, count: +count, first: +first, last: +last, mentions: +mentions || 0 };
  });
  apply(rooms);
  tabs?.postMessage(rooms);
}
document.addEventListener("htmx:wsBeforeMessage", activity);
document.addEventListener("htmx:sseBeforeMessage", activity);

// ---------- Reading: save the mark while the reader is at the bottom and looking ----------

// The server takes one mark per room every 2 s, counted when each arrives: a second of margin,
// for a first mark that took longer on its way than the next (a loaded machine, a new
// connection). Less and the next was refused now and then (429) in the browser tests.
const GAP_MS = 3000;
// When this tab last sent this room's mark: kept across page loads (a reload, a permalink, the
// room again from the rail), whose first mark would otherwise follow the last page's at once.
const SENT_KEY = `natter-read-sent-${room?.dataset.room}`;
// null where storage is off (it throws then).
const tab = (() => { try { return sessionStorage; } catch { return null; } })();
let sentAt = +(tab?.getItem(SENT_KEY) || 0);
let timer = 0;

function atBottom() {
  const s = document.querySelector(".scroller");
  return !s || Math.abs(s.scrollTop) < 48;
}

function maybeRead() {
  const upto = newest();
  if (!room || upto <= read || document.visibilityState !== "visible" || !atBottom()) {
    return showTitle();
  }
  const wait = sentAt + GAP_MS - Date.now();
  if (wait > 0) {
    if (!timer) timer = setTimeout(() => ((timer = 0), maybeRead()), wait);
    return showTitle();
  }
  sentAt = Date.now();
  tab?.setItem(SENT_KEY, String(sentAt));
  const before = read;
  read = upto;
  showTitle();
  fetch(`/rooms/${room.dataset.room}/read`, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf(), "HX-Request": "true" },
    body: new URLSearchParams({ seq: upto }),
  })
    .then((r) => {
      if (r.ok) return;
      read = Math.max(before, read === upto ? before : read);
      if (r.status === 429) setTimeout(maybeRead, 1000 * (+r.headers.get("Retry-After") || 2));
      showTitle();
    })
    .catch(() => {
      read = before; // tried again with the next message, or when the reader looks
      showTitle();
    });
}

if (room) {
  document.addEventListener("htmx:wsAfterMessage", maybeRead);
  document.addEventListener("htmx:sseMessage", maybeRead);
  document.addEventListener("visibilitychange", maybeRead);
  document.querySelector(".scroller")?.addEventListener("scroll", () => {
    if (newest() > read) maybeRead();
  }, { passive: true });
  // Opened without the fragment (a typed or remembered address): go to the divider anyway.
  if (!location.hash) document.getElementById("unread")?.scrollIntoView({ block: "center" });
}
