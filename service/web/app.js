// The sllen web page: upload with progress, then a before/after slider, a toggleable mask overlay
// with its legend, and a download. Plain JS, no dependencies: nothing is fetched from a CDN.
"use strict";

const $ = (id) => document.getElementById(id);
let objectUrls = [];

function show(id, visible) { $(id).hidden = !visible; }

function reset() {
  objectUrls.forEach(URL.revokeObjectURL);
  objectUrls = [];
  show("result", false); show("progress", false); show("error", false); show("drop", true);
  $("file").value = "";
}

function fail(message) {
  show("progress", false); show("drop", true);
  $("error").textContent = message; show("error", true);
}

function b64ToBlob(b64, type) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

function enhance(file) {
  show("error", false); show("drop", false); show("progress", true);
  const progress = $("progress");
  progress.classList.remove("working");
  $("bar-fill").style.width = "0";
  $("progress-text").textContent = "Uploading…";

  const form = new FormData();
  form.append("image", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/enhance?mask=true&format=jpeg&quality=92");
  const key = $("apikey").value.trim();
  if (key) xhr.setRequestHeader("Authorization", "Bearer " + key);
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) $("bar-fill").style.width = (100 * e.loaded / e.total) + "%";
  };
  xhr.upload.onload = () => {
    progress.classList.add("working");
    $("progress-text").textContent = "Enhancing…";
  };
  xhr.onerror = () => fail("The service could not be reached. Try again.");
  xhr.onload = () => {
    const body = xhr.response;
    if (xhr.status !== 200) {
      const detail = body && body.detail ? body.detail : "status " + xhr.status;
      const retry = xhr.getResponseHeader("Retry-After");
      fail("Could not enhance this photo: " + detail + (retry ? ` (retry in ${retry} s)` : ""));
      return;
    }
    render(file, body);
  };
  xhr.send(form);
}

function render(file, body) {
  const beforeUrl = URL.createObjectURL(file);
  const afterBlob = b64ToBlob(body.image.data, body.image.content_type);
  const afterUrl = URL.createObjectURL(afterBlob);
  objectUrls.push(beforeUrl, afterUrl);
  $("before").src = beforeUrl;
  $("after").src = afterUrl;
  $("download").href = afterUrl;
  $("download").download = (file.name.replace(/\.[^.]+$/, "") || "photo") + "-enhanced.jpg";
  drawMask(body);
  renderLegend(body.classes);
  const t = body.timing_ms;
  $("stats").textContent =
    `${body.width}×${body.height} · ${body.model.name} v${body.model.version} · ` +
    `${Math.round(t.total)} ms (inference ${Math.round(t.inference)} ms)`;
  setSlider(Number($("slider").value));
  show("progress", false); show("result", true);
}

function drawMask(body) {
  const canvas = $("overlay");
  const palette = new Map(body.classes.map((c) => [c.id, c.color]));
  const img = new Image();
  img.onload = () => {
    canvas.width = img.width; canvas.height = img.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, img.width, img.height);
    for (let i = 0; i < px.data.length; i += 4) {
      const color = palette.get(px.data[i]) || [0, 0, 0];
      px.data[i] = color[0]; px.data[i + 1] = color[1]; px.data[i + 2] = color[2]; px.data[i + 3] = 255;
    }
    ctx.putImageData(px, 0, 0);
    canvas.dataset.ready = "1";
  };
  img.src = "data:image/png;base64," + body.mask.data;
}

function renderLegend(classes) {
  const legend = $("legend");
  legend.replaceChildren(...classes.map((c) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.style.background = `rgb(${c.color.join(",")})`;
    li.append(swatch, c.name);
    return li;
  }));
}

function setSlider(value) {
  $("after-wrap").style.clipPath = `inset(0 0 0 ${value}%)`;
  $("divider").style.left = value + "%";
}

function init() {
  const drop = $("drop");
  $("pick").addEventListener("click", () => $("file").click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("file").click(); });
  $("file").addEventListener("change", () => { if ($("file").files[0]) enhance($("file").files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) enhance(e.dataTransfer.files[0]);
  });
  $("slider").addEventListener("input", (e) => setSlider(Number(e.target.value)));
  $("show-mask").addEventListener("change", (e) => {
    show("overlay", e.target.checked); show("legend", e.target.checked);
  });
  $("again").addEventListener("click", reset);
  const saved = localStorage.getItem("sllen-api-key");
  if (saved) $("apikey").value = saved;
  $("apikey").addEventListener("change", () => localStorage.setItem("sllen-api-key", $("apikey").value));
}

init();
