// The composer (#composer, its text #composer-body). Sending empties it at once, so the next
// message can be typed while this one is on its way. Success answers only a fresh client_id
// (the form stays, focus too); a refused post (422/429) answers the composer with its text and
// the reason, and keeps what was typed meanwhile; a post htmx could not deliver puts its text
// back and says why in the header's status line (which live.js writes too).

const body = () => document.querySelector("#composer-body");
let sent = ""; // the text of the post on its way
let typed = ""; // what was typed while a refused post was on its way

/** Two texts as one, a line apart. */
const join = (a, b) => (a && b ? `${a}\n${b}` : a || b);
/** Whether an htmx event is about the composer's post. */
const mine = (e) => e.detail.elt?.id === "composer" || e.detail.target?.id === "composer";

document.addEventListener("htmx:beforeRequest", (e) => {
  if (!mine(e)) return;
  sent = body().value;
  body().value = "";
});

document.addEventListener("htmx:beforeSwap", (e) => {
  if (mine(e) && e.detail.xhr.status !== 200) typed = body().value;
});

document.addEventListener("htmx:afterSwap", (e) => {
  if (!mine(e) || !typed) return;
  body().value = join(body().value, typed);
  typed = "";
});

document.addEventListener("htmx:afterRequest", (e) => {
  if (!mine(e)) return;
  const status = e.detail.xhr?.status;
  // Answered with the composer (sent, or refused with its text in it): nothing to put back.
  if (status === 200 || status === 422 || status === 429) sent = "";
  if (status !== 200) return;
  body().removeAttribute("aria-invalid");
  body().removeAttribute("aria-describedby");
});

/** Puts the text of a post that never arrived back, before whatever was typed since. */
function unsent(why) {
  const b = body();
  if (b && sent) b.value = join(sent, b.value);
  sent = "";
  const line = document.querySelector("#room-status");
  if (line) line.textContent = `${why} Your text is still here.`;
}

document.addEventListener("htmx:responseError", (e) => {
  if (!mine(e)) return;
  const code = e.detail.xhr.status;
  unsent(code === 503
    ? "Not sent: natter cannot reach its database; send it again in a moment."
    : `Not sent (error ${code}).`);
});

document.addEventListener("htmx:sendError", (e) => {
  if (mine(e)) unsent("Not sent: the connection is down.");
});

// Enter sends, Shift+Enter is a new line, Escape leaves the composer (UI.md, keyboard use).
// An Enter that ends an input method's composition only picks the text; a blank message is
// not sent, unless it carries files (attach.js keeps them in the form's file input).
document.addEventListener("keydown", (e) => {
  if (e.target.id !== "composer-body") return;
  if (e.key === "Escape") e.target.blur();
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    const files = e.target.form.querySelector("input[type=file]")?.files.length;
    if (e.target.value.trim() || files) e.target.form.requestSubmit();
  }
});
