// cremad report: every test clip of a run, its predictions, spectrogram and attention, offline.
// Plain JavaScript, no library. data/index.js calls cremadReportIndex (one row per clip); a page
// of clips loads data/speaker-<k>.js for its speakers, which calls cremadReportSpeaker. The view
// lives in location.hash, so a link reopens it.
"use strict";

const report = { index: null, speakers: {}, loading: {}, readyAt: null, imagesAt: null, renders: 0 };
window.cremadReport = report;
window.cremadReportIndex = (data) => { report.index = data; };
window.cremadReportSpeaker = (data) => { report.speakers[data.speaker] = data.clips; };

const STATE_KEYS = ["model", "speaker", "true", "pred", "correct", "disagree", "sort", "order", "page", "size", "clip"];
const SORTS = { id: "clip id", confidence: "confidence", padding: "attention on padding", duration: "duration" };
const PAGE_SIZE = 25;
const COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const SVG = "http://www.w3.org/2000/svg";

function element(tag, attributes = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// --- state in the URL -----------------------------------------------------------------------

function readState() {
  const params = new URLSearchParams(location.hash.slice(1));
  const state = {};
  for (const key of STATE_KEYS) if (params.get(key)) state[key] = params.get(key);
  return state;
}

function stateLink(state) {
  const params = new URLSearchParams();
  for (const key of STATE_KEYS) if (state[key]) params.set(key, state[key]);
  return "#" + params.toString();
}

function setState(changes, keepPage = false) {
  const state = Object.assign(readState(), changes);
  if (!keepPage) delete state.page;
  for (const key of Object.keys(state)) if (!state[key]) delete state[key];
  location.hash = stateLink(state);
}

// "2" names model2 (or its seed ensemble, or its lowest seed); any view key names itself.
function viewOf(name) {
  const views = report.index.views;
  if (!name) return views[0];
  const full = /^\d+$/.test(name) ? "model" + name : name;
  return views.find((v) => v.key === full) || views.find((v) => v.key === full + "-ensemble")
    || views.find((v) => v.key.startsWith(full + "/")) || views[0];
}

function shortKey(key) {
  const match = /^model(\d+)$/.exec(key);
  return match ? match[1] : key;
}

// --- selecting clips ------------------------------------------------------------------------

function disagreeing(i) {
  const seen = new Set();
  for (const view of report.index.views) if (view.pred[i] >= 0) seen.add(view.pred[i]);
  return seen.size > 1;
}

function selectClips(state, view) {
  const { clips, emotions, speakers } = report.index;
  const wantTrue = state.true ? emotions.indexOf(state.true) : -1;
  const wantPred = state.pred ? emotions.indexOf(state.pred) : -1;
  const chosen = [];
  for (let i = 0; i < clips.id.length; i++) {
    if (state.speaker && speakers[clips.speaker[i]] !== state.speaker) continue;
    if (state.true && clips.true[i] !== wantTrue) continue;
    if ((state.pred || state.correct) && view.pred[i] < 0) continue;
    if (state.pred && view.pred[i] !== wantPred) continue;
    if (state.correct === "yes" && view.pred[i] !== clips.true[i]) continue;
    if (state.correct === "no" && view.pred[i] === clips.true[i]) continue;
    if (state.disagree && !disagreeing(i)) continue;
    chosen.push(i);
  }
  const sortValue = {
    confidence: view.conf, padding: view.pad || [], duration: clips.duration,
  }[state.sort];
  if (sortValue) {
    const sign = state.order === "desc" ? -1 : 1;
    // Clips without a value (no WAV, no attention) go last in either order.
    chosen.sort((a, b) => {
      const x = sortValue[a], y = sortValue[b];
      if (x === null || x === undefined) return (y === null || y === undefined) ? a - b : 1;
      if (y === null || y === undefined) return -1;
      return sign * (x - y) || a - b;
    });
  } else if (state.order === "desc") {
    chosen.reverse();
  }
  return chosen;
}

// --- summaries across clips -------------------------------------------------------------------

function confusionTable(view, state) {
  const { clips, emotions } = report.index;
  const counts = emotions.map(() => emotions.map(() => 0));
  let right = 0, total = 0;
  for (let i = 0; i < clips.id.length; i++) {
    if (view.pred[i] < 0) continue;
    counts[clips.true[i]][view.pred[i]] += 1;
    total += 1;
    right += view.pred[i] === clips.true[i] ? 1 : 0;
  }
  const current = viewOf(state.model) === view;
  const head = element("tr", {}, element("th", {}, "true \\ pred"), emotions.map((e) => element("th", {}, e)));
  const rows = emotions.map((t, r) => element("tr", {}, element("th", {}, t), emotions.map((p, c) => {
    const link = stateLink({ model: shortKey(view.key), true: t, pred: p });
    const classes = ["cell", r === c ? "diag" : "", current && state.true === t && state.pred === p ? "current" : ""];
    const shade = counts[r].reduce((a, b) => a + b, 0) ? counts[r][c] / counts[r].reduce((a, b) => a + b, 0) : 0;
    return element("td", { class: classes.join(" "), style: `background: rgba(31, 119, 180, ${(0.75 * shade).toFixed(3)})` },
      element("a", { href: link, title: `${view.label}: true ${t}, predicted ${p}` }, String(counts[r][c])));
  })));
  const accuracy = total ? (100 * right / total).toFixed(1) : "n/a";
  return element("table", { class: "confusion", "data-view": view.key },
    element("caption", {}, `${view.label} (${total} clips, WA ${accuracy} %)`), head, rows);
}

function percent(value) { return value === null || value === undefined ? "" : (100 * value).toFixed(1); }

function paddingTables(view) {
  const { clips, emotions, emotionNames, frames } = report.index;
  const byEmotion = element("table", {}, element("caption", {}, `${view.label}: by true emotion`),
    element("tr", {}, element("th", {}, "emotion"), element("th", {}, "on padding, %"), element("th", {}, "clips")),
    emotions.map((e, k) => element("tr", {}, element("th", {}, emotionNames[k]),
      element("td", {}, percent(view.padding.byEmotion[e][0])), element("td", {}, String(view.padding.byEmotion[e][1])))));
  // Beside each length bin: the padding's share of the input, what uniform attention would put there.
  const inputShare = (low, high) => {
    const shares = [];
    for (let i = 0; i < clips.id.length; i++) {
      const d = clips.duration[i];
      if (d !== null && d >= low && d < high && clips.frames[i]) shares.push(1 - clips.frames[i] / frames);
    }
    return shares.length ? shares.reduce((a, b) => a + b, 0) / shares.length : null;
  };
  const byLength = element("table", {}, element("caption", {}, `${view.label}: by clip length`),
    element("tr", {}, element("th", {}, "length, s"), element("th", {}, "on padding, %"),
      element("th", {}, "padding in input, %"), element("th", {}, "clips")),
    view.padding.byLength.map(([low, high, mean, n]) => element("tr", {},
      element("th", {}, `${low.toFixed(1)}–${high.toFixed(1)}`), element("td", {}, percent(mean)),
      element("td", {}, percent(inputShare(low, high))), element("td", {}, String(n)))));
  return [byEmotion, byLength];
}

function renderSummary(state) {
  const { views } = report.index;
  document.getElementById("confusions").replaceChildren(...views.map((v) => confusionTable(v, state)));
  const padding = views.filter((v) => v.padding).flatMap(paddingTables);
  const without = views.filter((v) => !v.padding && v.attention).map((v) =>
    element("p", { class: "note" }, `${v.label}: ${v.noAttention || "no clip with both attention weights and a WAV"}`));
  document.getElementById("padding").replaceChildren(...padding, ...without,
    padding.length || without.length ? "" : element("p", { class: "note" }, "No model with attention in this run."));
}

// --- the filter form --------------------------------------------------------------------------

function choice(label, key, options, state) {
  const select = element("select", { name: key },
    options.map(([value, text]) => {
      const option = element("option", { value }, text);
      if ((state[key] || "") === value) option.selected = true;
      return option;
    }));
  select.addEventListener("change", () => setState({ [key]: select.value }));
  return element("label", {}, label + " ", select);
}

function renderFilters(state) {
  const { views, speakers, emotions, emotionNames } = report.index;
  const emotionOptions = [["", "any"], ...emotions.map((e, k) => [e, emotionNames[k]])];
  const disagree = element("input", { type: "checkbox", name: "disagree" });
  disagree.checked = Boolean(state.disagree);
  disagree.addEventListener("change", () => setState({ disagree: disagree.checked ? "1" : "" }));
  document.getElementById("filters").replaceChildren(
    choice("model", "model", views.map((v) => [shortKey(v.key), v.label]), { model: shortKey(viewOf(state.model).key) }),
    choice("speaker", "speaker", [["", "any"], ...speakers.map((s) => [s, s])], state),
    choice("true", "true", emotionOptions, state),
    choice("predicted", "pred", emotionOptions, state),
    choice("correct", "correct", [["", "any"], ["yes", "right"], ["no", "wrong"]], state),
    element("label", {}, disagree, " models disagree"),
    choice("sort by", "sort", Object.entries(SORTS).map(([k, t]) => [k === "id" ? "" : k, t]), state),
    choice("order", "order", [["", "ascending"], ["desc", "descending"]], state),
    element("a", { href: "#" }, "clear"));
}

// --- one clip -------------------------------------------------------------------------------

function decodeCurve(encoded, frames) {
  const bytes = Uint8Array.from(atob(encoded.data), (c) => c.charCodeAt(0));
  const values = new Float32Array(bytes.buffer); // little-endian, as every browser's platform
  const curves = [];
  for (let s = 0; s < encoded.steps; s++) {
    curves.push(Array.from(values.subarray(s * frames, (s + 1) * frames)));
  }
  return curves;
}

function predictionTable(i, data) {
  const { views, emotions, clips } = report.index;
  const head = element("tr", {}, element("th", {}, "model"), element("th", {}, "predicted"),
    emotions.map((e) => element("th", {}, e)));
  const rows = views.filter((v) => data.probs[v.key]).map((v) => {
    const right = v.pred[i] === clips.true[i];
    return element("tr", { "data-view": v.key }, element("th", {}, v.label),
      element("td", { class: right ? "right" : "wrong" }, emotions[v.pred[i]] + (right ? " ✓" : " ✗")),
      data.probs[v.key].map((p) => element("td", { class: "p", style: `background: rgba(31, 119, 180, ${(0.8 * p).toFixed(3)})` },
        p.toFixed(2))));
  });
  if (data.votes) {
    const total = data.votes.reduce((a, b) => a + b, 0);
    rows.push(element("tr", { class: "crowd" }, element("th", {}, `crowd, voice only (${total} votes)`), element("td", {}, ""),
      data.votes.map((n) => element("td", { class: "p", style: `background: rgba(44, 160, 44, ${(0.8 * n / total).toFixed(3)})` },
        (n / total).toFixed(2)))));
  }
  return element("table", { class: "probs" }, head, rows);
}

function clipPlot(i, data, notes) {
  const { views, frames, padSide, hopSeconds, clips } = report.index;
  const width = 600, specHeight = 90, curveHeight = 80, left = 34, axis = 16;
  const total = frames || clips.frames[i] || 1;
  const own = clips.frames[i];
  const x = (frame) => left + (frame / Math.max(total - 1, 1)) * (width - left - 4);
  const ownStart = own === null ? null : padSide === "start" ? total - own : 0;
  const curves = [];
  for (const v of views.filter((v) => data.probs[v.key])) {
    if (data.att[v.key]) curves.push([v, decodeCurve(data.att[v.key], total)]);
    else notes.push([v.key, `${v.label}: no curve, ${v.noAttention || "no attention weights for this clip in its fold"}.`]);
  }
  const height = specHeight + (curves.length ? curveHeight + 6 : 0) + axis;
  const svg = element("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "plot" });
  svg.append(element("svg:rect", { x: left, y: 0, width: width - left - 4, height: specHeight, fill: "#eee" }));
  if (data.spec && own) {
    const image = element("svg:image", { href: data.spec, x: x(ownStart), y: 0, width: x(ownStart + own - 1) - x(ownStart),
      height: specHeight, preserveAspectRatio: "none" });
    image.loaded = new Promise((resolve) => { image.onload = resolve; image.onerror = resolve; });
    svg.append(image);
  }
  const padText = own === null ? "padding unknown (no WAV)" : "padding";
  if (own === null || own < total) {
    const [a, b] = own === null ? [0, total - 1] : padSide === "start" ? [0, total - own] : [own - 1, total - 1];
    svg.append(element("svg:rect", { x: x(a), y: 0, width: Math.max(x(b) - x(a), 1), height: height - axis,
      fill: "rgba(120, 120, 120, 0.25)", class: "padding" }));
    svg.append(element("svg:text", { x: x(a) + 3, y: 12 }, padText));
  }
  svg.append(element("svg:text", { x: 0, y: specHeight / 2 }, "mel"));
  if (curves.length) {
    const top = specHeight + 6;
    const peak = Math.max(...curves.flatMap(([, steps]) => steps.flatMap((s) => Math.max(...s)))) || 1;
    svg.append(element("svg:text", { x: 0, y: top + 10 }, peak.toPrecision(2)));
    svg.append(element("svg:text", { x: 0, y: top + curveHeight }, "0"));
    curves.forEach(([v, steps], k) => {
      steps.forEach((step, s) => {
        const points = step.map((w, f) => `${x(f).toFixed(1)},${(top + curveHeight - (w / peak) * curveHeight).toFixed(1)}`);
        const line = element("svg:polyline", { points: points.join(" "), fill: "none", stroke: COLOURS[k % COLOURS.length],
          "stroke-width": 1.2, "data-view": v.key, "data-step": s, class: "attention" });
        line.weights = step; // the values drawn, for anyone checking the page against attention.npz
        svg.append(line);
      });
      const share = v.pad[i];
      svg.append(element("svg:text", { x: width - 8, y: top + 12 + 12 * k, "text-anchor": "end", style: `fill: ${COLOURS[k % COLOURS.length]}` },
        `${v.label}` + (share === null ? "" : `: ${(100 * share).toFixed(1)} % on padding`)));
    });
  }
  const seconds = (total - 1) * hopSeconds;
  svg.append(element("svg:text", { x: left, y: height - 3 }, "0 s"));
  svg.append(element("svg:text", { x: width - 4, y: height - 3, "text-anchor": "end" }, `${seconds.toFixed(2)} s (model frames: ${total})`));
  return svg;
}

function clipCard(i, state) {
  const { clips, speakers, emotionNames, data: dataDir } = report.index;
  const id = clips.id[i];
  const data = report.speakers[clips.speaker[i]][id];
  const duration = clips.duration[i] === null ? "duration unknown" : `${clips.duration[i].toFixed(2)} s`;
  const notes = [];
  const plot = clipPlot(i, data, notes);
  const audio = data.wav
    ? element("audio", { controls: "", preload: "none", src: data.wav })
    : element("p", { class: "missing" }, `No WAV for this clip under ${dataDir || "--data (none given)"}: no audio, spectrogram or duration.`);
  const card = element("article", { class: "clip" + (state.clip === id ? " focus" : ""), id: "clip-" + id, "data-clip": id },
    element("h3", {}, element("a", { href: stateLink(Object.assign({}, state, { clip: id })) }, id),
      element("span", { class: "facts" }, `speaker ${speakers[clips.speaker[i]]} · ${duration} · true ${emotionNames[clips.true[i]]}`)),
    predictionTable(i, data), audio, notes.map(([key, n]) => element("p", { class: "note", "data-view": key }, n)), plot);
  return card;
}

// --- the page ---------------------------------------------------------------------------------

function loadSpeaker(k) {
  if (report.speakers[k]) return Promise.resolve();
  if (!report.loading[k]) {
    report.loading[k] = new Promise((resolve, reject) => {
      const script = element("script", { src: `data/speaker-${k}.js` });
      script.onload = resolve;
      script.onerror = () => reject(new Error(`data/speaker-${k}.js did not load`));
      document.head.append(script);
    });
  }
  return report.loading[k];
}

function pager(page, pages, state) {
  const links = [];
  if (page > 1) links.push(element("a", { href: stateLink(Object.assign({}, state, { page: String(page - 1) })) }, "← previous"));
  links.push(element("span", {}, `page ${page} of ${pages}`));
  if (page < pages) links.push(element("a", { href: stateLink(Object.assign({}, state, { page: String(page + 1) })) }, "next →"));
  return links;
}

async function render() {
  const hash = location.hash;
  const state = readState();
  const view = viewOf(state.model);
  renderFilters(state);
  renderSummary(state);
  const chosen = selectClips(state, view);
  const size = Math.max(1, parseInt(state.size, 10) || PAGE_SIZE);
  const pages = Math.max(1, Math.ceil(chosen.length / size));
  // A link to a clip without a page opens the page that holds it.
  const holding = state.clip && !state.page ? chosen.indexOf(report.index.clips.id.indexOf(state.clip)) : -1;
  const page = holding >= 0 ? Math.floor(holding / size) + 1 : Math.min(Math.max(1, parseInt(state.page, 10) || 1), pages);
  const shown = chosen.slice((page - 1) * size, page * size);
  const filtered = ["speaker", "true", "pred", "correct", "disagree"].some((k) => state[k]);
  document.getElementById("count").textContent = `${chosen.length} of ${report.index.clips.id.length} clips`
    + (filtered ? ` (predictions of ${view.label})` : "");
  document.getElementById("pager-top").replaceChildren(...pager(page, pages, state));
  document.getElementById("pager-bottom").replaceChildren(...pager(page, pages, state));
  await Promise.all([...new Set(shown.map((i) => report.index.clips.speaker[i]))].map(loadSpeaker));
  if (hash !== location.hash) return; // a newer view was asked for while this one loaded
  document.getElementById("clips").replaceChildren(...shown.map((i) => clipCard(i, state)));
  if (state.clip) document.getElementById("clip-" + state.clip)?.scrollIntoView();
  report.page = { page, pages };
  report.renders += 1;
  if (report.readyAt === null) report.readyAt = performance.now();
  document.body.dataset.rendered = hash || "#";
  // The spectrograms load after the page is drawn; note when the last one is there.
  await Promise.all([...document.querySelectorAll("#clips image")].map((image) => image.loaded));
  if (report.imagesAt === null) report.imagesAt = performance.now();
  if (hash === location.hash) document.body.dataset.images = hash || "#";
}

function start() {
  const index = report.index;
  if (!index) {
    document.body.prepend(element("p", { class: "missing" }, "data/index.js did not load: open index.html from the folder cremad report wrote."));
    return;
  }
  document.getElementById("title").textContent = index.title;
  const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
  document.getElementById("about").textContent = `${count(index.clips.id.length, "test clip")}, `
    + `${count(index.speakers.length, "speaker")}, ${count(index.views.length, "model")}; runs ${index.runs}; `
    + `audio ${index.data || "not given (--data)"}`
    + (index.crowd ? "; crowd votes of CREMA-D (voice only)" : "; no crowd votes (--meta)") + ".";
  document.getElementById("notes").replaceChildren(...index.notes.map((n) => element("li", {}, n)));
  window.addEventListener("hashchange", render);
  // n and p turn the pages, as in coverage.py's htmlcov.
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("select, input") || event.ctrlKey || event.metaKey || event.altKey || !report.page) return;
    const step = { n: 1, p: -1 }[event.key];
    const page = report.page.page + (step || 0);
    if (step && page >= 1 && page <= report.page.pages) setState({ page: String(page), clip: "" }, true);
  });
  render();
}

document.addEventListener("DOMContentLoaded", start);
