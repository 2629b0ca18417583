// Editing a message in place. Without JS, "Edit" opens the edit page; with it, htmx swaps the
// edit form into the message itself (the server answers an htmx GET of the same address with
// just the form) and saving swaps the new content back. Escape or "Cancel" puts the message
// back as it was; Up in an empty composer edits my newest message (me.css shows "Edit" on my
// messages only, so the newest visible "Edit" is mine).

const before = new WeakMap(); // article -> its content before the form replaced it

/** Opens the inline edit form in the article of this "Edit" link. */
function open(link) {
  const article = link.closest("article");
  if (!article || before.has(article)) return;
  before.set(article, article.innerHTML);
  htmx
    .ajax("GET", link.href, { source: link, target: article, swap: "innerHTML" })
    .then(() => {
      const text = article.querySelector("textarea");
      if (!text) return before.delete(article); // refused (deleted meanwhile): nothing to edit
      text.focus();
      text.setSelectionRange(text.value.length, text.value.length);
    });
}

/** Puts the article back as it was before editing. */
function cancel(article) {
  const html = before.get(article);
  before.delete(article);
  if (html === undefined) return;
  article.innerHTML = html;
  htmx.process(article);
  article.querySelector(".edit-link")?.focus();
}

document.addEventListener("click", (e) => {
  const edit = e.target.closest("#messages .edit-link");
  if (edit) {
    e.preventDefault();
    return open(edit);
  }
  const back = e.target.closest(".inline-edit .edit-cancel");
  if (back) {
    e.preventDefault();
    cancel(back.closest("article"));
  }
});

document.addEventListener("keydown", (e) => {
  const form = e.target.closest?.(".inline-edit");
  if (form && e.key === "Escape") return cancel(form.closest("article"));
  if (form && e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (e.target.value.trim()) form.requestSubmit();
    return;
  }
  if (e.target.id === "composer-body" && e.key === "ArrowUp" && !e.target.value) {
    const mine = [...document.querySelectorAll("#messages .edit-link")].filter(
      (a) => a.offsetParent !== null,
    );
    if (mine.length) {
      e.preventDefault();
      open(mine[mine.length - 1]);
    }
  }
});

// Saved, or changed over the live socket meanwhile: the article shows the message again.
for (const swapped of ["htmx:afterSwap", "htmx:oobAfterSwap"]) {
  document.addEventListener(swapped, (e) => {
    const article = e.detail.target;
    if (article?.matches?.("#messages > article") && !article.querySelector(".inline-edit")) {
      before.delete(article);
    }
  });
}
