// The page over the HTTP API: POST /v1/jobs, then GET /v1/jobs/{id} until done or failed; each answer
// says where the job is (its place in the queue, then the stage of the edit running).
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 400;
const STAGES = ["queued", "detect", "S31", "S32", "S33"];  // the page's rows, in the order they run
// The editor reports these seconds per face; each page stage is the sum of its own.
const STAGE_SECONDS = { detect: ["detect", "align"], S31: ["invert"], S32: ["search"], S33: ["decode", "paste"] };

let photo = null;     // the chosen File
let beforeUrl = null; // its object URL
let canRerender = false; // whether the server re-renders a finished edit at another strength

function message(text) { $("message").textContent = text || ""; }

function chosenEdits() {
  return [...document.querySelectorAll("#attributes input:checked")]
    .filter((input) => input.value !== "")
    .map((input) => `${input.dataset.attr}=${input.value}`);
}

function updateButton() { $("edit").disabled = !photo || chosenEdits().length === 0; }

async function detail(response) {
  try { return (await response.json()).detail || response.statusText; } catch { return response.statusText; }
}

async function loadAttributes() {
  const box = $("attributes");
  const response = await fetch("/v1/attributes");
  if (!response.ok) { box.querySelector("p").textContent = `Cannot load the attributes: ${await detail(response)}`; return; }
  const info = await response.json();
  box.querySelector("p").remove();
  for (const attr of info.attributes) {
    const row = document.createElement("div");
    row.className = "attr";
    row.innerHTML = `<span>${attr}</span><span class="choice"></span>`;
    for (const [value, label] of [["", "keep"], ["1", "add"], ["0", "remove"]]) {
      const option = document.createElement("label");
      option.innerHTML = `<input type="radio" name="attr-${attr}" value="${value}">${label}`;
      const input = option.querySelector("input");
      input.dataset.attr = attr;
      input.checked = value === "";
      input.addEventListener("change", updateButton);
      row.querySelector(".choice").append(option);
    }
    box.append(row);
  }
  canRerender = Boolean(info.rerender);
  const strength = $("strength");
  Object.assign(strength, { min: info.strength.min, max: info.strength.max, value: info.strength.default });
  $("strength-value").textContent = Number(strength.value).toFixed(2);
}

function choose(file) {
  if (!file) return;
  photo = file;
  shown = null;
  $("file-name").textContent = file.name;
  if (beforeUrl) URL.revokeObjectURL(beforeUrl);
  beforeUrl = URL.createObjectURL(file);
  message("");
  updateButton();
}

function setStage(name, state, time, share) {
  const li = document.querySelector(`#stages [data-stage="${name}"]`);
  li.className = state || "";
  li.querySelector(".time").textContent = time || "";
  li.querySelector(".bar")?.remove();
  if (share !== undefined) {
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, 100 * share)}%`;
    li.append(bar);
  }
}

const secs = (s) => `${s.toFixed(s < 10 ? 2 : 1)} s`;

// The rows before `current` done (the queue's with its wait), `current` in `state` with `time`, the rest blank.
function markStages(job, current, state, time) {
  const at = STAGES.indexOf(current);
  STAGES.forEach((s, i) => {
    if (i < at) setStage(s, "done", s === "queued" ? secs(job.seconds.queued) : "");
    else if (i === at) setStage(s, state, time);
    else setStage(s);
  });
}

function showProgress(job) {
  const note = $("progress-note");
  const typical = job.typical_seconds ? ` Recent edits took ${secs(job.typical_seconds)} on average.` : "";
  if (job.state === "queued") {
    markStages(job, "queued", "running", `${job.position === 1 ? "next" : `#${job.position}`} · ${secs(job.seconds.queued)}`);
    note.textContent = "Waiting for a free worker.";
  } else if (job.state === "editing" && !job.stage) {  // the worker is reading the photo: no stage has begun
    markStages(job, "detect");
    note.textContent = `Reading the photo.${typical}`;
  } else if (job.state === "editing") {
    markStages(job, job.stage.name, "running", secs(job.stage.seconds));
    note.textContent = `Editing for ${secs(job.seconds.editing)}.${typical}`;
  } else if (job.state === "done") {
    const seconds = job.report.faces[0].seconds;
    const per = Object.fromEntries(Object.entries(STAGE_SECONDS).map(([s, keys]) =>
      [s, keys.reduce((sum, k) => sum + (seconds[k] || 0), 0)]));
    const total = Object.values(per).reduce((a, b) => a + b, 0) || 1;
    setStage("queued", "done", secs(job.seconds.queued));
    for (const [s, t] of Object.entries(per)) setStage(s, "done", secs(t), t / total);
    note.textContent = `Done in ${secs(job.seconds.editing)} (stage times measured by the editor).`;
  } else {  // failed in the stage it reached (no face, the time limit), else reading the photo or queued
    if (job.stage) markStages(job, job.stage.name, "failed", secs(job.stage.seconds));
    else if (job.seconds.editing > 0) markStages(job, "detect");
    else markStages(job, "queued", "failed");
    note.textContent = "";
    message(job.error);
  }
}

// The finished job the strength slider re-renders (decode and paste only, no new search), if the server can.
let shown = null;
let rendering = false;

function showAfter(url) {
  $("after").src = url;
  $("download").href = url;
}

async function rerender() {
  if (!shown || rendering) return;
  rendering = true;
  try {
    for (let asked = null; asked !== $("strength").value;) {  // until the image shows the slider's last value
      asked = $("strength").value;
      const form = new FormData();
      form.append("strength", asked);
      const response = await fetch(`/v1/jobs/${shown.id}/render`, { method: "POST", body: form });
      if (!response.ok) {
        message(await detail(response));
        if (response.status === 410) shown = null;  // its latents are gone: the next move needs a new edit
        return;
      }
      if (shown.url) URL.revokeObjectURL(shown.url);
      shown.url = URL.createObjectURL(await response.blob());
      showAfter(shown.url);
    }
  } catch (error) {
    message(`The server did not answer: ${error.message}`);
  } finally {
    rendering = false;
  }
}

function showResult(job) {
  const ext = job.media_type === "image/jpeg" ? "jpg" : "png";
  const name = `${photo.name.replace(/\.[^.]*$/, "")}-edited.${ext}`;
  $("before").src = beforeUrl;
  $("download").download = name;
  showAfter(job.image);
  shown = canRerender ? { id: job.id, url: null } : null;
  const face = job.report.faces[0];
  const rows = Object.entries(face.edits).map(([attr, target]) => {
    const s = face.s[attr];
    return `<tr><td>${attr}</td><td>${target ? "add" : "remove"}</td>` +
      `<td>${s.photo.toFixed(2)} → ${s.result.toFixed(2)}</td></tr>`;
  });
  $("scores").innerHTML = "<caption>E-Net's score s on the face, before → after</caption>" +
    `<tr><th>attribute</th><th>goal</th><th>s</th></tr>${rows.join("")}`;
  $("result").hidden = false;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(url) {
  for (;;) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(await detail(response));
    const job = await response.json();
    showProgress(job);
    if (job.state === "done") return showResult(job);
    if (job.state === "failed") return;
    await sleep(POLL_MS);
  }
}

async function submit(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("photo", photo, photo.name);
  chosenEdits().forEach((edit) => form.append("attributes", edit));
  form.append("strength", $("strength").value);
  message("");
  $("edit").disabled = true;
  $("progress").hidden = false;
  STAGES.forEach((s) => setStage(s));
  $("progress-note").textContent = "Uploading.";
  try {
    const response = await fetch("/v1/jobs", { method: "POST", body: form });
    if (response.status !== 202) {  // refused: the reason says what to do (a 429's says when to retry)
      $("progress").hidden = true;
      message(await detail(response));
      return;
    }
    await follow(response.headers.get("Location"));
  } catch (error) {
    message(`The server did not answer: ${error.message}`);
  } finally {
    updateButton();
  }
}

function setUp() {
  $("form").addEventListener("submit", submit);
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  const drop = $("drop");
  // Dropping a file anywhere else would make the browser leave the page to open it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, () => drop.classList.add("over"));
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
  $("strength").addEventListener("input", (e) => {
    $("strength-value").textContent = Number(e.target.value).toFixed(2);
    rerender();
  });
  $("split").addEventListener("input", (e) => $("compare").style.setProperty("--split", `${e.target.value}%`));
  $("before").addEventListener("error", () => {  // e.g. TIFF: the server reads it, the browser may not
    if (!$("before").getAttribute("src")) return;
    $("before").closest("figure").hidden = true;
    $("before-missing").hidden = false;
    setView("side");
  });
  $("before").addEventListener("load", () => {
    $("before").closest("figure").hidden = false;
    $("before-missing").hidden = true;
  });
  document.querySelectorAll(".views button").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
  loadAttributes().catch((error) => message(`Cannot reach the server: ${error.message}`));
}

function setView(view) {
  $("compare").className = `compare ${view}`;
  document.querySelectorAll(".views button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
}

setUp();
