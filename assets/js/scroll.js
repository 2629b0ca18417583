// The message list scrolls in a column-reverse box, so it opens at the newest message even
// without JS and scrollTop 0 means "at the bottom". Follow new messages only from there (or
// from less than 48 px above it): a reader scrolled up to read older ones stays where they are.

const scroller = () => document.querySelector(".scroller");
let atBottom = true;

// A live frame arrives over the socket or, where sockets never open, as a server-sent event.
for (const before of ["htmx:wsBeforeMessage", "htmx:sseBeforeMessage"]) {
  document.addEventListener(before, () => {
    const s = scroller();
    atBottom = !s || Math.abs(s.scrollTop) < 48;
  });
}

for (const after of ["htmx:wsAfterMessage", "htmx:sseMessage"]) {
  document.addEventListener(after, () => {
    const s = scroller();
    if (s && atBottom) s.scrollTop = 0;
  });
}
