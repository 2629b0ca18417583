// natter's service worker, served as /sw.js (web/push.rs) so its scope is the whole site. It
// shows the Web Push notifications the server sends while no natter tab has the room open
// (src/push.rs: {title, room, author, text, url, tag}), one tag per room so a room's
// notifications replace each other, and opens the message when one is clicked.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { text: event.data ? event.data.text() : "" };
  }
  const title = String(data.title || "natter");
  const text = String(data.text || "");
  // In a room the author goes before the text; a direct message's title is its author.
  const body = data.author && data.author !== data.title ? `${data.author}: ${text}` : text;
  event.waitUntil(
    self.registration.showNotification(title, {
      body,
      tag: String(data.tag || "natter"),
      renotify: Boolean(data.tag),
      icon: "/assets/icon.svg",
      data: { url: String(data.url || "/") },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin);
  if (url.origin !== self.location.origin) return; // only natter's own pages
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const tab = windows.find((w) => new URL(w.url).origin === url.origin);
      if (tab) {
        try {
          await tab.focus();
          await tab.navigate(url.href); // refused for a tab this worker does not control
          return;
        } catch {
          // fall through: a new window at the message
        }
      }
      await self.clients.openWindow(url.href);
    })(),
  );
});
