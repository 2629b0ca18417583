// Times arrive in UTC (<time datetime>, with a readable UTC fallback for people without JS);
// show them in the reader's zone. Day dividers and name lines must follow the reader's days
// too (the server knows only UTC), and heal where separately rendered pieces meet: a live
// message, a catch-up, an older page.

const DAY_MS = 24 * 60 * 60 * 1000;
/** Consecutive messages of one person within this long share one name line (as on the server). */
const GROUP_WINDOW_MS = 5 * 60 * 1000;

/** "Today", "Yesterday", or a short date (with its year when it is long ago). */
function dayLabel(d) {
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
  const daysAgo = Math.round((today - new Date(d).setHours(0, 0, 0, 0)) / DAY_MS);
  if (daysAgo === 0) return "Today";
  if (daysAgo === 1) return "Yesterday";
  const year = daysAgo > 300 ? "numeric" : undefined;
  return d.toLocaleDateString(undefined, {
    weekday: "short", day: "numeric", month: "short", year,
  });
}

/** Shows every <time datetime> under `root` in local time: short in messages, full on hover. */
function localise(root) {
  if (!root.querySelectorAll) return;
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (isNaN(d)) continue;
    if (t.dataset.style === "day") {
      t.textContent = dayLabel(d);
      continue;
    }
    t.title = d.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
    t.textContent = t.dataset.style === "short"
      ? d.toLocaleTimeString(undefined, { timeStyle: "short" })
      : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
}

/** A divider before the first message of each local day, none elsewhere; name lines grouped. */
function tidy() {
  let prev; // the message before: its local day, time, seq and author
  for (const article of document.querySelectorAll("#messages > article[data-seq]")) {
    const time = article.querySelector("time[datetime]");
    const at = new Date(time?.dateTime);
    const seq = +article.dataset.seq;
    const author = article.dataset.author;
    const day = at.toDateString();
    const newDay = prev?.day !== day;
    const before = article.previousElementSibling;
    let divider = before?.classList.contains("day-divider") ? before : null;
    if (!newDay) {
      divider?.remove();
    } else if (!divider || divider.firstElementChild.dateTime !== time.dateTime) {
      // The server's dividers carry a UTC date, ours the first message's instant: each
      // divider is remade once, for the reader's day.
      if (!divider) {
        divider = document.createElement("div");
        divider.className = "day-divider";
        divider.setAttribute("role", "separator");
        article.before(divider);
      }
      const label = document.createElement("time");
      label.dateTime = time.dateTime;
      label.textContent = dayLabel(at);
      label.dataset.style = "day";
      divider.replaceChildren(label);
      divider.setAttribute("aria-label", at.toLocaleDateString(undefined, { dateStyle: "full" }));
    }
    const grouped = !newDay && prev.author === author && prev.seq + 1 === seq
      && at - prev.at < GROUP_WINDOW_MS;
    article.classList.toggle("continued", grouped);
    prev = { day, at, seq, author };
  }
}

document.addEventListener("htmx:load", (e) => localise(e.detail.elt));

// Once per frame or answer, after all of its swaps.
let tidying = false;
document.addEventListener("htmx:oobAfterSwap", (e) => {
  localise(e.detail.target);
  if (e.detail.target.id !== "messages" || tidying) return;
  tidying = true;
  queueMicrotask(() => {
    tidying = false;
    tidy();
  });
});

document.addEventListener("DOMContentLoaded", () => {
  localise(document);
  tidy();
});
