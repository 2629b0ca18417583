// Notifications (src/push.rs, views/push.rs, assets/sw.js):
// - the tab's icon gets a dot while something unread mentions the reader;
// - the profile's "Turn on notifications" button (added here: the browser's permission prompt
//   only ever follows that click), which also subscribes this browser to Web Push;
// - desktop notifications while a natter tab is open but hidden: for each message of the open
//   room the reader's setting asks for (every message, or mentions and direct messages), and,
//   where this browser has no push subscription, for activity in the reader's other rooms.

const ON_KEY = "natter-notify"; // "on": the reader turned desktop notifications on here
const PUSH_KEY = "natter-push"; // "on": this browser has a Web Push subscription
const store = (() => { try { return localStorage; } catch { return null; } })();
const supported = "Notification" in window;

/** The CSRF token htmx sends with every request (layout.rs puts it on <body>). */
function csrf() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"] ?? "";
  } catch {
    return "";
  }
}

// ---------- The tab's icon: a dot while there are mentions ----------

const icon = document.querySelector('link[rel="icon"]');
const plainIcon = icon?.getAttribute("href");
let dotted = "";
let mentionedHere = false; // a live message in this room mentioned the reader while hidden

function mentionsPending() {
  if (mentionedHere) return true;
  return [...document.querySelectorAll(".unread-count.mentioned")].some((b) => !b.hidden);
}

function drawDot() {
  const img = new Image();
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 64;
    const g = canvas.getContext("2d");
    if (!g) return;
    g.drawImage(img, 0, 0, 64, 64);
    g.beginPath();
    g.arc(50, 14, 13, 0, 2 * Math.PI);
    g.fillStyle = "#dc2626";
    g.fill();
    g.lineWidth = 4;
    g.strokeStyle = "#ffffff";
    g.stroke();
    dotted = canvas.toDataURL("image/png");
    showIcon();
  };
  img.src = plainIcon;
}

let iconQueued = false;
function showIcon() {
  iconQueued = false;
  if (!icon || !plainIcon) return;
  const want = mentionsPending();
  if (want && !dotted) return drawDot();
  const href = want ? dotted : plainIcon;
  if (icon.getAttribute("href") !== href) icon.setAttribute("href", href);
  document.documentElement.dataset.mentions = want ? "yes" : "no";
}
function queueIcon() {
  if (iconQueued) return;
  iconQueued = true;
  setTimeout(showIcon, 0);
}

// unread.js shows and hides the badges; follow them.
new MutationObserver(queueIcon).observe(document.body, {
  subtree: true,
  attributes: true,
  attributeFilter: ["hidden", "class"],
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") mentionedHere = false;
  queueIcon();
});
showIcon();

// ---------- Desktop notifications ----------

const wanted = () =>
  supported && Notification.permission === "granted" && store?.getItem(ON_KEY) === "on";

let dnd = { until: 0, checked: 0 };
/** Whether "do not disturb" is on (asked of the server at most once a minute). */
async function disturbing() {
  if (Date.now() - dnd.checked > 60_000) {
    try {
      const r = await fetch("/profile/dnd", { headers: { Accept: "application/json" } });
      if (r.ok) dnd = { until: +((await r.json()).until ?? 0), checked: Date.now() };
    } catch {
      // keep what was known
    }
  }
  return dnd.until <= Date.now();
}

async function show(title, body, url, tag) {
  if (!(await disturbing())) return;
  try {
    const n = new Notification(title, { body, tag, icon: "/assets/icon.svg" });
    n.onclick = () => {
      window.focus();
      location.assign(url);
      n.close();
    };
  } catch {
    // Where pages may not make notifications themselves (Android), the worker does.
    const reg = await navigator.serviceWorker?.getRegistration("/");
    reg?.showNotification(title, { body, tag, icon: "/assets/icon.svg", data: { url } });
  }
}

// This room: each new message, as the reader's setting for it says.
const room = document.querySelector(".room[data-room]");
const me = room?.dataset.me;
let seen = Math.max(
  0,
  ...[...document.querySelectorAll("#messages article[data-seq]")].map((a) => +a.dataset.seq),
);

function arrived() {
  const fresh = [...document.querySelectorAll("#messages article.message[data-seq]")]
    .filter((a) => +a.dataset.seq > seen);
  for (const a of fresh) seen = Math.max(seen, +a.dataset.seq);
  if (!room || document.visibilityState !== "hidden") return;
  const setting = document.getElementById("notify-form")?.dataset.notify ?? "all";
  const direct = room.hasAttribute("data-direct");
  for (const a of fresh) {
    if (a.dataset.author === me) continue;
    const mentioned = !!a.querySelector(`.mention[data-user="${CSS.escape(me ?? "")}"]`);
    if (mentioned) mentionedHere = true;
    const wants = setting === "all" || (setting === "mentions" && (mentioned || direct));
    if (!wants || !wanted()) continue;
    const author = a.querySelector(".author")?.textContent ?? "";
    let text = (a.querySelector(".message-body")?.textContent ?? "").replace(/\s+/g, " ").trim();
    if (text.length > 120) text = `${text.slice(0, 119)}…`;
    const name = document.querySelector("h1")?.textContent?.trim() || "natter";
    const title = direct ? author : name;
    const url = a.querySelector("a.permalink")?.getAttribute("href") ?? location.pathname;
    const tag = `natter-room-${room.dataset.roomId ?? room.dataset.room}`;
    show(title, direct ? text : `${author}: ${text}`, url, tag);
  }
  queueIcon();
}
document.addEventListener("htmx:wsAfterMessage", arrived);
document.addEventListener("htmx:sseMessage", arrived);

// Other rooms (the rail's live activity), when no push subscription covers them.
const railSeq = new Map();
for (const a of document.querySelectorAll(".rooms-rail a[data-room-id]")) {
  railSeq.set(a.dataset.roomId, +a.dataset.seq);
}

function activity(e) {
  const text = e.detail.message ?? e.detail.data;
  if (typeof text !== "string" || !text.startsWith("<template data-activity")) return;
  if (document.visibilityState !== "hidden" || !wanted()) return;
  if (store?.getItem(PUSH_KEY) === "on") return;
  const frame = new DOMParser().parseFromString(text, "text/html");
  const runs = frame.querySelector("template")?.dataset.activity ?? "";
  for (const run of runs.split(" ").filter(Boolean)) {
    const [id, count, , last, mentions] = run.split(":");
    const link = document.querySelector(`.rooms-rail a[data-room-id="${CSS.escape(id)}"]`);
    if (!link || link.hasAttribute("aria-current") || +last <= (railSeq.get(id) ?? 0)) continue;
    railSeq.set(id, +last);
    const setting = link.querySelector(".unread-count")?.dataset.notify ?? "all";
    const named = +mentions || 0;
    if (setting === "nothing" || (setting === "mentions" && !named)) continue;
    const name = link.querySelector(".rail-name")?.textContent?.trim() ?? "natter";
    const body = named
      ? `${named === 1 ? "A message mentions" : `${named} messages mention`} you`
      : `${count} new message${+count === 1 ? "" : "s"}`;
    show(name, body, `${link.pathname}/messages/${last}`, `natter-room-${id}`);
  }
}
document.addEventListener("htmx:wsBeforeMessage", activity);
document.addEventListener("htmx:sseBeforeMessage", activity);

// ---------- The profile: turning notifications on and off for this browser ----------

const controls = document.getElementById("push-controls");

/** A VAPID key as PushManager wants it. */
function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function post(path, sub) {
  const keys = sub.toJSON().keys ?? {};
  const r = await fetch(path, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf() },
    body: new URLSearchParams({
      endpoint: sub.endpoint,
      p256dh: keys.p256dh ?? "",
      auth: keys.auth ?? "",
    }),
  });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error ?? `HTTP ${r.status}`);
}

/** `promise`, or a rejection after `ms`: a browser without a push service may never answer. */
const within = (promise, ms) =>
  Promise.race([promise, new Promise((_, no) => setTimeout(() => no(new Error("no answer")), ms))]);

async function subscribe() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return "no-push";
  try {
    const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await within(navigator.serviceWorker.ready, 8000);
    const sub = (await reg.pushManager.getSubscription())
      ?? (await within(
        reg.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: keyBytes(controls.dataset.vapidKey),
        }),
        8000,
      ));
    await post("/push/subscriptions", sub);
    store?.setItem(PUSH_KEY, "on");
    return "push";
  } catch {
    store?.setItem(PUSH_KEY, "off");
    return "no-push";
  }
}

async function unsubscribe() {
  store?.setItem(ON_KEY, "off");
  store?.setItem(PUSH_KEY, "off");
  const reg = await navigator.serviceWorker?.getRegistration("/");
  const sub = await reg?.pushManager?.getSubscription();
  if (!sub) return;
  await post("/push/subscriptions/delete", sub).catch(() => {});
  await sub.unsubscribe().catch(() => {});
}

function render(state, note = "") {
  const status = controls.querySelector(".push-status");
  controls.querySelector("button")?.remove();
  const say = {
    unsupported: "This browser cannot show notifications.",
    denied: "Notifications are blocked for natter in this browser's settings.",
    off: "Notifications are off on this browser.",
    on: "Notifications are on: natter tells you when its tab is hidden, and when it is closed.",
    tab:
      "Notifications are on while a natter tab is open; " +
      "this browser cannot receive them when natter is closed.",
  }[state];
  status.textContent = note ? `${say} ${note}` : say;
  if (state === "unsupported" || state === "denied") return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button";
  button.id = "push-toggle";
  const on = state === "on" || state === "tab";
  button.textContent = on ? "Turn off notifications" : "Turn on notifications";
  button.addEventListener("click", async () => {
    button.disabled = true;
    if (on) {
      await unsubscribe();
      return render("off");
    }
    const permission = await Notification.requestPermission();
    if (permission !== "granted") return render(permission === "denied" ? "denied" : "off");
    store?.setItem(ON_KEY, "on");
    render((await subscribe()) === "push" ? "on" : "tab");
  });
  status.after(button);
}

if (controls) {
  if (!supported) render("unsupported");
  else if (Notification.permission === "denied") render("denied");
  else if (!wanted()) render("off");
  else render(controls.dataset.subscribed === "true" ? "on" : "tab");
}
