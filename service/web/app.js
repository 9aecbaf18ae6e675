// The sllen web page: upload with progress, then a before/after slider, a strength slider, a
// toggleable mask overlay with its legend, and a download. Plain JS, no dependencies: nothing is
// fetched from a CDN. Strength is previewed and downloaded without uploading again: the browser
// mixes the photo as sent and the enhanced one by opacity, in sRGB values, as the service's
// `strength` does.
"use strict";

const $ = (id) => document.getElementById(id);
let objectUrls = [];
let answer = null; // the enhanced photo: {blob, type, name}
const EXTENSIONS = { "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/avif": "avif" };

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
  xhr.open("POST", "/v1/enhance?mask=true");  // format=auto: the answer in the photo's family
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
  const type = body.image.content_type;
  const name = (file.name.replace(/\.[^.]+$/, "") || "photo") + "-enhanced.";
  answer = { blob: afterBlob, type, name };
  $("before").onerror = () => previewable(false);
  $("before").onload = () => previewable(true);
  $("before").src = beforeUrl;
  $("after").src = afterUrl;
  $("download").href = afterUrl;
  $("download").download = name + (EXTENSIONS[type] || "img");
  $("strength").value = 100;
  setStrength(100);
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

function previewable(ok) {
  // HEIC shows only in Safari: elsewhere there is no "before" to compare or blend with.
  $("strength").disabled = !ok; $("slider").disabled = !ok;
  show("no-preview", !ok);
  if (!ok) { setSlider(0); setStrength(100); }
}

function setStrength(value) {
  $("after").style.opacity = value / 100;
  $("strength-value").textContent = value + "%";
}

function blended() {
  // The download at the chosen strength: the same mix as on screen, at full size.
  const before = $("before"), after = $("after"), strength = Number($("strength").value) / 100;
  const canvas = document.createElement("canvas");
  canvas.width = after.naturalWidth; canvas.height = after.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(before, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = strength;
  ctx.drawImage(after, 0, 0);
  const type = answer.type === "image/png" ? "image/png" : "image/jpeg";
  return new Promise((resolve) => canvas.toBlob((blob) => resolve([blob, type]), type, 0.92));
}

async function download(e) {
  if (Number($("strength").value) === 100 || $("strength").disabled) return; // the answer as is
  e.preventDefault();
  const [blob, type] = await blended();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url; link.download = answer.name + EXTENSIONS[type];
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function setSlider(value) {
  $("after-wrap").style.clipPath = `inset(0 0 0 ${value}%)`;
  $("divider").style.left = value + "%";
}

function init() {
  const drop = $("drop");
  $("pick").addEventListener("click", () => $("file").click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("file").click(); });
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    $("file").value = ""; // else picking the same file again (after an error) changes nothing
    if (file) enhance(file);
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) enhance(e.dataTransfer.files[0]);
  });
  $("slider").addEventListener("input", (e) => setSlider(Number(e.target.value)));
  $("strength").addEventListener("input", (e) => setStrength(Number(e.target.value)));
  $("download").addEventListener("click", download);
  $("show-mask").addEventListener("change", (e) => {
    show("overlay", e.target.checked); show("legend", e.target.checked);
  });
  $("again").addEventListener("click", reset);
  // The key lives for this tab only (sessionStorage), never on disk across sessions.
  localStorage.removeItem("sllen-api-key"); // where an older page kept it
  const saved = sessionStorage.getItem("sllen-api-key");
  if (saved) $("apikey").value = saved;
  $("apikey").addEventListener("change", () => sessionStorage.setItem("sllen-api-key", $("apikey").value));
}

init();
