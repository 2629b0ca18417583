// natter's only script: live-socket resume and close codes, Enter to send, local times, scroll
// and member-list upkeep. Everything works without it except live updates.
"use strict";
(() => {
  const $ = (s) => document.querySelector(s);
  const lastSeq = () => Math.max(0, ...[...document.querySelectorAll("#messages [data-seq]")].map((e) => +e.dataset.seq));
  // Every (re)connect resumes after the newest message shown (DESIGN.md §6).
  htmx.createWebSocket = (url) => {
    const u = new URL(url, location.href);
    u.searchParams.set("after", lastSeq());
    return new WebSocket(u);
  };
  htmx.config.wsReconnectDelay = (n) => Math.random() * Math.min(10000, 500 * 2 ** n);
  let downSince = 0, downTimer = 0, retries = 0;
  const status = (text) => { const s = $("#room-status"); if (s) s.textContent = text; };
  const showDown = () => { const s = (Date.now() - downSince) / 1000; status(s > 30 ? "offline: messages will appear when the connection is back" : "reconnecting…"); };
  const live = document.documentElement.dataset;
  document.addEventListener("htmx:wsOpen", () => { downSince = retries = 0; clearInterval(downTimer); status(""); delete live.live; });
  document.addEventListener("htmx:wsClose", (e) => {
    const code = e.detail.event.code;
    if (code === 4401) return location.assign("/");
    if (code === 4409) return location.reload();
    if (code === 4404) return status("You left this room.");
    if (code === 1000) return;
    live.live = "down"; // what the page shows of presence is stale now (natter.css mutes it)
    if (!downSince) { downSince = Date.now(); downTimer = setInterval(showDown, 1000); }
    // A refused upgrade (signed out, or no longer a member, while away) looks like any failed
    // connection: every third failure asks the page itself, and reloads onto what it says.
    if (++retries % 3 === 0) fetch(location.href, { redirect: "manual" }).then((r) => { if (r.type === "opaqueredirect" || r.status === 404) location.reload(); }, () => {});
    // The ws extension retries by itself only after 1006/1011/1012/1013 (Caddy closes with
    // 1001, other proxies with other codes).
    if (![1006, 1011, 1012, 1013].includes(code)) setTimeout(() => e.detail.socketWrapper.reconnect(), htmx.config.wsReconnectDelay(retries));
  });
  // Sending empties the composer at once, so the next message can be typed while this one is
  // on its way. Success answers only a fresh client_id (the form stays, focus too); a refused
  // post answers the composer with its text and the reason, and keeps what was typed meanwhile;
  // a post htmx could not deliver puts its text back and says why.
  const body = () => $("#composer-body");
  let sent = "", typed = "";
  const join = (a, b) => (a && b ? `${a}\n${b}` : a || b);
  const mine = (e) => e.detail.elt?.id === "composer" || e.detail.target?.id === "composer";
  document.addEventListener("htmx:beforeRequest", (e) => { if (mine(e)) { sent = body().value; body().value = ""; } });
  document.addEventListener("htmx:beforeSwap", (e) => { if (mine(e) && e.detail.xhr.status !== 200) typed = body().value; });
  document.addEventListener("htmx:afterSwap", (e) => { if (mine(e) && typed) { body().value = join(body().value, typed); typed = ""; } });
  document.addEventListener("htmx:afterRequest", (e) => {
    if (!mine(e) || e.detail.xhr?.status !== 200) return;
    sent = ""; body().removeAttribute("aria-invalid"); body().removeAttribute("aria-describedby");
  });
  const unsent = (why) => { const b = body(); if (b && sent) b.value = join(sent, b.value); sent = ""; status(`${why} Your text is still here.`); };
  document.addEventListener("htmx:responseError", (e) => unsent(e.detail.xhr.status === 503 ? "Not sent: natter cannot reach its database; send it again in a moment." : `Not sent (error ${e.detail.xhr.status}).`));
  document.addEventListener("htmx:sendError", () => unsent("Not sent: the connection is down."));
  // The message list scrolls in a column-reverse box, so it opens at the newest message even
  // without JS and scrollTop 0 means "at the bottom". Follow new messages only from there.
  const scroller = () => $(".scroller");
  let atBottom = true;
  document.addEventListener("htmx:wsBeforeMessage", () => { const s = scroller(); atBottom = !s || Math.abs(s.scrollTop) < 48; });
  document.addEventListener("htmx:wsAfterMessage", () => { const s = scroller(); if (s && atBottom) s.scrollTop = 0; });
  // Member entries are upserts: one replaces the entry with its id; someone not listed is
  // added, unless the list is capped (big rooms) and they are offline.
  // (A whole fresh list, sent on every connect, replaces the old one as it is.)
  document.addEventListener("htmx:oobBeforeSwap", (e) => {
    const list = e.detail.target, items = e.detail.fragment;
    if (list.id !== "members" || items.firstElementChild?.tagName !== "LI") return;
    items.querySelectorAll("li[id]").forEach((li) => {
      const old = document.getElementById(li.id);
      if (old) old.remove(); else if (list.hasAttribute("data-capped") && li.dataset.online !== "true") li.remove();
    });
  });
  // Times arrive in UTC; show them in the reader's zone.
  const day = (d) => { const t = new Date(); t.setHours(0, 0, 0, 0); const n = Math.round((t - new Date(d).setHours(0, 0, 0, 0)) / 864e5); return n === 0 ? "Today" : n === 1 ? "Yesterday" : d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", year: n > 300 ? "numeric" : undefined }); };
  const localise = (root) => root.querySelectorAll?.("time[datetime]").forEach((t) => {
    const d = new Date(t.getAttribute("datetime")); if (isNaN(d)) return;
    const full = d.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
    if (t.dataset.style === "day") { t.textContent = day(d); return; }
    t.title = full;
    t.textContent = t.dataset.style === "short" ? d.toLocaleTimeString(undefined, { timeStyle: "short" }) : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  });
  document.addEventListener("htmx:load", (e) => localise(e.detail.elt));
  // Day dividers and name lines follow the reader's days (the server knows only UTC), and
  // heal where separately rendered pieces meet: a live message, a catch-up, an older page.
  const tidy = () => {
    let prev;
    document.querySelectorAll("#messages > article[data-seq]").forEach((a) => {
      const t = a.querySelector("time[datetime]"), at = new Date(t?.dateTime), seq = +a.dataset.seq;
      const today = at.toDateString(), newDay = prev?.today !== today;
      let d = a.previousElementSibling?.classList.contains("day-divider") ? a.previousElementSibling : null;
      if (!newDay) d?.remove();
      else if (!d || d.firstElementChild.dateTime !== t.dateTime) {
        d ??= a.insertAdjacentElement("beforebegin", Object.assign(document.createElement("div"), { className: "day-divider", role: "separator" }));
        const label = Object.assign(document.createElement("time"), { dateTime: t.dateTime, textContent: day(at) });
        label.dataset.style = "day";
        d.replaceChildren(label);
        d.ariaLabel = at.toLocaleDateString(undefined, { dateStyle: "full" });
      }
      a.classList.toggle("continued", !newDay && prev.author === a.dataset.author && prev.seq + 1 === seq && at - prev.at < 3e5);
      prev = { today, at, seq, author: a.dataset.author };
    });
  };
  let tidying = false; // once per frame or answer, after all of its swaps
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    localise(e.detail.target);
    if (e.detail.target.id === "messages" && !tidying) { tidying = true; queueMicrotask(() => { tidying = false; tidy(); }); }
  });
  // Enter sends, Shift+Enter is a new line, Escape leaves the composer.
  document.addEventListener("keydown", (e) => {
    if (e.target.id !== "composer-body") return;
    if (e.key === "Escape") e.target.blur();
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); if (e.target.value.trim()) e.target.form.requestSubmit(); }
  });
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-copy]"); if (!b) return;
    navigator.clipboard?.writeText($(b.dataset.copy).textContent.trim()).then(() => { b.textContent = "Copied"; setTimeout(() => (b.textContent = "Copy code"), 1500); });
  });
  document.addEventListener("DOMContentLoaded", () => {
    localise(document);
    tidy();
    document.querySelectorAll("[data-copy]").forEach((b) => (b.hidden = !navigator.clipboard));
  });
})();
