// Files in the composer (its own input, #composer-files): chosen with the picker, pasted into
// the text, or dropped anywhere on the conversation, they are listed above the text, each with
// a button that removes it. The list is the truth: it is written back into the input
// (input.files) after every change, so htmx's FormData sends exactly what is listed. A file the
// server would refuse (the input's data-max-upload, data-max-files) is refused here, saying
// why, before a byte is uploaded in vain; the server still decides.
// Sending empties the list, as composer.js empties the text, and shows the upload's progress. A
// refused post (the composer comes back from the server with an empty input) or one that never
// arrived gets its files back, whatever the reason, so they can be fixed (removed, or the text
// changed) and sent again without choosing them again. Without JavaScript the input works alone.

const input = () => document.querySelector("#composer-files");
let files = []; // the files listed, in order
let sending = []; // the files of the post on its way
const items = new WeakMap(); // each listed file's <li>, made once

/** Whether an htmx event is about the composer's post (as in composer.js). */
const mine = (e) => e.detail.elt?.id === "composer" || e.detail.target?.id === "composer";

/** A size as the server writes it (files::human_size): 512 bytes, 1.5 KiB, 10 MiB. */
function human(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = +bytes;
  let unit = 0;
  for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
  const whole = unit === 0 || value >= 10 || value % 1 < 0.05;
  return `${whole ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** Says why files were not attached, where the server says why a post was refused; `null`
 *  takes back what this script said (never the server's words). */
function say(why) {
  const field = input();
  let line = document.querySelector("#composer-error");
  if (!why) {
    if (line?.dataset.attach) line.remove();
    field?.removeAttribute("aria-describedby");
    return;
  }
  if (!line) {
    line = document.createElement("p");
    line.id = "composer-error";
    line.className = "field-error";
    line.setAttribute("role", "alert");
    (document.querySelector("#composer-state") ?? field.form).append(line);
  }
  line.dataset.attach = "true";
  line.textContent = why;
  field.setAttribute("aria-describedby", "composer-error");
}

/** Lists `added` after the files already listed, except those over the server's limits. */
function add(added) {
  const { maxUpload, maxFiles } = input().dataset;
  const large = [];
  let over = 0;
  for (const file of added) {
    if (file.size > +maxUpload) large.push(file.name);
    else if (files.length >= +maxFiles) over++;
    else files.push(file);
  }
  const why = [];
  if (large.length) {
    const are = large.length > 1 ? "are" : "is";
    const most = human(maxUpload);
    why.push(`${large.join(", ")} ${are} larger than ${most}, the most a file can be: `
      + "not attached.");
  }
  if (over) {
    why.push(`A message can carry at most ${maxFiles} files: ${over} not attached. `
      + "Send the rest in another one.");
  }
  say(why.join(" ") || null);
  show();
}

/** Takes `file` off the list; the focus goes to the next remove button, or the text. */
function remove(file) {
  const at = files.indexOf(file);
  files = files.filter((f) => f !== file);
  say(null);
  show();
  const next = files[Math.min(at, files.length - 1)];
  const focus = next
    ? items.get(next).querySelector("button")
    : document.querySelector("#composer-body");
  focus?.focus();
}

/** One file in the list: a preview for an image (a data: URL, which the CSP's img-src
 *  allows, unlike a blob: one), its name and size, and its remove button. */
function item(file) {
  const li = document.createElement("li");
  li.className = "attach-item";
  if (file.type.startsWith("image/")) {
    const img = li.appendChild(document.createElement("img"));
    img.alt = "";
    const reader = new FileReader();
    reader.onload = () => (img.src = reader.result);
    reader.readAsDataURL(file);
  }
  const name = li.appendChild(document.createElement("span"));
  name.className = "attach-name";
  name.dir = "auto";
  name.textContent = file.name;
  const size = li.appendChild(document.createElement("span"));
  size.className = "attach-size";
  size.textContent = human(file.size);
  const button = li.appendChild(document.createElement("button"));
  button.type = "button";
  button.className = "attach-remove";
  button.setAttribute("aria-label", `Remove ${file.name}`);
  button.textContent = "×";
  button.addEventListener("click", () => remove(file));
  return li;
}

/** Writes the list into the composer's input and shows it (again after htmx replaced the
 *  composer). */
function show() {
  const field = input();
  if (!field) return;
  const chosen = new DataTransfer();
  for (const file of files) chosen.items.add(file);
  field.files = chosen.files;
  let list = field.form.querySelector(".attach-list");
  if (!files.length) return list?.remove();
  if (!list) {
    list = document.createElement("ul");
    list.className = "attach-list";
    list.setAttribute("aria-label", "Files to send");
    field.form.querySelector("#composer-body").before(list);
  }
  list.replaceChildren(...files.map((f) => items.get(f) ?? items.set(f, item(f)).get(f)));
}

// The picker replaces the input's files with its new choice: they join the list.
document.addEventListener("change", (e) => {
  if (e.target === input()) add([...e.target.files]);
});

// Pasting files (an image copied from another program) into the text attaches them; pasted
// text stays the browser's business.
document.addEventListener("paste", (e) => {
  if (e.target.id !== "composer-body" || !e.clipboardData?.files.length) return;
  e.preventDefault();
  add([...e.clipboardData.files]);
});

// Files dragged over the conversation: it is marked as the place to drop them (a drop only
// happens where dragover was refused its default), and dropped, they are attached.
const area = (e) =>
  input() && e.dataTransfer?.types.includes("Files") ? e.target.closest?.(".conversation") : null;
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (e) => {
    const here = area(e);
    if (!here) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    here.classList.add("dropping");
  });
}
document.addEventListener("dragleave", (e) => {
  const here = e.target.closest?.(".conversation");
  if (here && !here.contains(e.relatedTarget)) here.classList.remove("dropping");
});
document.addEventListener("drop", (e) => {
  const here = area(e);
  if (!here) return;
  e.preventDefault();
  here.classList.remove("dropping");
  add([...e.dataTransfer.files]);
});

// A post with files: the list empties (its FormData was taken already) and a progress bar
// stands in for it until the answer.
document.addEventListener("htmx:beforeRequest", (e) => {
  if (!mine(e) || !files.length) return;
  sending = files;
  files = [];
  show();
  const box = document.createElement("div");
  box.className = "upload-progress";
  const label = box.appendChild(document.createElement("label"));
  label.htmlFor = "upload-progress";
  label.textContent = sending.length > 1
    ? `Sending ${sending.length} files`
    : `Sending ${sending[0].name}`;
  const bar = box.appendChild(document.createElement("progress"));
  bar.id = "upload-progress";
  bar.max = 1;
  bar.value = 0;
  input().form.querySelector("#composer-body").before(box);
});

// The upload, then the (small) answer, report progress: the bar only moves forward.
document.addEventListener("htmx:xhr:progress", (e) => {
  const bar = document.querySelector("#upload-progress");
  if (!bar || !mine(e) || !e.detail.total) return;
  bar.value = Math.max(bar.value, e.detail.loaded / e.detail.total);
});

// Sent: the files are in the room. Refused or lost: they are listed again, before any chosen
// meanwhile, in whichever composer is on the page now.
document.addEventListener("htmx:afterRequest", (e) => {
  if (!mine(e)) return;
  document.querySelector(".upload-progress")?.remove();
  if (e.detail.xhr?.status !== 200) files = [...sending, ...files];
  sending = [];
  show();
});
