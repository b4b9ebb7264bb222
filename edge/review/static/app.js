// moodcam review page: plain JS, no build step.
// Every action is POSTed at once; the grid shows what the server answered, never a guess.
// Undo replays the "before" states the server returned for the last action.
"use strict";

const PAGE = 120;
const MAX_CHANGES = 500;  // = server.MAX_CHANGES
const $ = (sel) => document.querySelector(sel);
const state = {
  info: null,
  items: [],          // loaded items, in grid order
  byId: new Map(),    // id -> index in items
  total: 0,
  focus: 0,
  anchor: null,       // index where a shift-selection started
  selected: new Set(),
  undo: [],           // [[before item, ...], ...]
  queue: Promise.resolve(),
  pending: 0,
  loading: false,
  grouped: localStorage.getItem("moodcam.grouped") === "1",  // one card per track (g)
  groups: [],         // [{track, ids: [...] in grid order, lo, hi (ts), open}]
  groupOf: new Map(), // id -> its group
};
const TRACK_GAP_S = 120;  // a track id seen again after this long is another track (the daemon restarted)

// ---------- helpers ----------
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function labelClass(label) { return "l-" + (label || "none"); }
function pct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + "%"; }
function fmtTime(ts) {
  const d = new Date(ts * 1000);
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  if (d.toDateString() === now.toDateString()) return time;
  return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time.slice(0, 5);
}
function toLocalInput(ts) {
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function fromLocalInput(v) { return v ? new Date(v).getTime() / 1000 : null; }
function toast(msg, error) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = "toast" + (error ? " error" : "");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, error ? 6000 : 2200);
}
function setSaved(s, text) {
  const e = $("#saved");
  e.dataset.state = s;
  e.textContent = text;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    headers[state.info.token_header] = state.info.write_token;
  }
  const r = await fetch(path, {
    method: options.method || "GET", headers, credentials: "same-origin",
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    let detail = data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new Error(detail || `${r.status} ${r.statusText}`);
  }
  return data;
}

// ---------- filters (kept in the address bar's #hash, so a reload keeps them) ----------
function readFilters() {
  const f = {};
  const reviewed = document.querySelector('input[name="reviewed"]:checked').value;
  if (reviewed) f.reviewed = reviewed;
  const labels = [...document.querySelectorAll(".chip[aria-pressed='true']")].map((c) => c.dataset.label);
  if (labels.length) f.label = labels;
  const minc = $("#min-conf").value, maxc = $("#max-conf").value;
  if (minc !== "") f.min_confidence = Math.min(1, Math.max(0, Number(minc) / 100));
  if (maxc !== "") f.max_confidence = Math.min(1, Math.max(0, Number(maxc) / 100));
  const since = fromLocalInput($("#since").value), until = fromLocalInput($("#until").value);
  if (since !== null) f.since = since;
  if (until !== null) f.until = until;
  f.order = $("#order").value;
  return f;
}
function query(f, keys) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (keys && !keys.includes(k)) continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x)); else q.append(k, v);
  }
  return q.toString();
}
function writeHash(f) { history.replaceState(null, "", "#" + query(f)); }
function applyHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  const reviewed = q.get("reviewed") || "";
  const radio = document.querySelector(`input[name="reviewed"][value="${reviewed}"]`);
  if (radio) radio.checked = true;
  const labels = q.getAll("label");
  document.querySelectorAll(".chip").forEach((c) => c.setAttribute("aria-pressed", labels.includes(c.dataset.label)));
  $("#min-conf").value = q.has("min_confidence") ? Math.round(Number(q.get("min_confidence")) * 100) : "";
  $("#max-conf").value = q.has("max_confidence") ? Math.round(Number(q.get("max_confidence")) * 100) : "";
  $("#since").value = q.has("since") ? toLocalInput(Number(q.get("since"))) : "";
  $("#until").value = q.has("until") ? toLocalInput(Number(q.get("until"))) : "";
  if (q.has("order")) $("#order").value = q.get("order");
}

// ---------- loading ----------
// A new list (reset) always starts and makes any older answer stale; "more" waits its turn.
let loadSeq = 0;
async function load(reset) {
  if (!reset && state.loading) return;
  const seq = ++loadSeq;
  state.loading = true;
  const f = readFilters();
  if (reset) writeHash(f);
  const offset = reset ? 0 : state.items.length;
  try {
    const data = await api(`/api/faces?${query(f)}&limit=${PAGE}&offset=${offset}`);
    if (seq !== loadSeq) return;  // superseded by a newer filter
    if (reset) {
      state.items = [];
      state.byId.clear();
      state.groups = [];
      state.groupOf.clear();
      state.selected.clear();
      state.focus = 0;
      $("#grid").replaceChildren();
    }
    state.total = data.total;
    $("#new-faces").hidden = true;
    const frag = document.createDocumentFragment();
    for (const item of data.items) {
      if (state.byId.has(item.id)) continue;  // a row logged meanwhile shifted the pages
      state.byId.set(item.id, state.items.length);
      state.items.push(item);
      joinGroup(item);
      frag.appendChild(renderCard(item));
    }
    $("#grid").appendChild(frag);
    layoutGroups();
    $("#empty").hidden = state.items.length > 0;
    $("#more").hidden = state.items.length >= state.total;
    paintFocus(false);
  } catch (e) {
    toast("Could not load faces: " + e.message, true);
  } finally {
    if (seq === loadSeq) state.loading = false;
  }
  refreshStats();
}

let statsTimer = null;
function refreshStats() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(async () => {
    try {
      renderStats(await api("/api/stats?" + query(readFilters(), ["min_confidence", "max_confidence", "since", "until"])));
    } catch (e) {
      toast("Could not load statistics: " + e.message, true);
    }
  }, 150);
}

// ---------- tracks: one card per track (g), its faces stacked behind it; e opens it ----------
function joinGroup(item) {
  if (item.track === null || item.track === undefined) return;
  let g = state.groups.find((x) => x.track === item.track && item.ts >= x.lo - TRACK_GAP_S && item.ts <= x.hi + TRACK_GAP_S);
  if (!g) { g = { track: item.track, ids: [], lo: item.ts, hi: item.ts, open: false }; state.groups.push(g); }
  g.ids.push(item.id);
  g.lo = Math.min(g.lo, item.ts);
  g.hi = Math.max(g.hi, item.ts);
  state.groupOf.set(item.id, g);
}
function stackOf(index) {
  // The faces a card stands for: its whole track when it heads a closed group, else itself.
  const it = state.items[index];
  const g = state.grouped ? state.groupOf.get(it.id) : null;
  if (!g || g.open || g.ids[0] !== it.id) return [it];
  return g.ids.map((id) => state.items[state.byId.get(id)]);
}
function isHidden(index) {
  const it = state.items[index];
  const g = state.grouped ? state.groupOf.get(it.id) : null;
  return Boolean(g && !g.open && g.ids[0] !== it.id);
}
function visible() {
  const out = [];
  for (let i = 0; i < state.items.length; i++) if (!isHidden(i)) out.push(i);
  return out;
}
function layoutGroups() {
  const cards = $("#grid").children;
  for (let i = 0; i < state.items.length; i++) {
    const card = cards[i], it = state.items[i];
    const g = state.grouped ? state.groupOf.get(it.id) : null;
    card.hidden = isHidden(i);
    const head = Boolean(g && g.ids.length > 1 && g.ids[0] === it.id);
    card.classList.toggle("stacked", head && !g.open);
    card.classList.toggle("member", Boolean(g && g.open && g.ids.length > 1));
    card.querySelector(".stack")?.remove();
    if (head) {
      const faces = stackOf(i);
      const done = faces.filter((f) => f.reviewed).length;
      const badge = el("span", "stack", g.open ? `track ${g.track} · ${g.ids.length} faces` : `×${g.ids.length}` + (done ? ` · ${done}✓` : ""));
      badge.title = g.open ? "close this track (e)" : "open this track (e)";
      badge.dataset.count = g.ids.length;
      card.querySelector(".thumb").appendChild(badge);
    }
  }
  if (state.items.length && isHidden(state.focus)) {
    state.focus = state.byId.get(state.groupOf.get(state.items[state.focus].id).ids[0]);
  }
}
function toggleGrouped() {
  state.grouped = !state.grouped;
  localStorage.setItem("moodcam.grouped", state.grouped ? "1" : "0");
  $("#group-toggle").setAttribute("aria-pressed", state.grouped);
  state.anchor = null;
  layoutGroups();
}
function toggleOpen(index) {
  const g = state.groupOf.get(state.items[index]?.id);
  if (!state.grouped || !g || g.ids.length < 2) return;
  g.open = !g.open;
  if (!g.open) state.focus = state.byId.get(g.ids[0]);
  layoutGroups();
}

// ---------- the live view (l) and a face in its scene (v) ----------
function toggleLive() {
  if (!state.info.live) return;
  const panel = $("#live"), img = $("#live-img");
  const on = panel.hidden;
  panel.hidden = !on;
  $("#live-toggle").setAttribute("aria-pressed", on);
  if (!on) { img.removeAttribute("src"); return; }  // closing the stream tells the daemon to stop
  $("#live-status").textContent = "connecting…";
  img.src = "/api/live";
  fetch("/api/live/frame", { credentials: "same-origin" }).then((r) => {  // a 503 says why nothing comes
    $("#live-status").textContent = r.ok ? `what the daemon sees, boxes and labels drawn` :
      "no live frames: is the daemon running on this state directory, with [live] fps above 0?";
  });
}
function showScene() {
  const box = $("#scene");
  if (!box.hidden) { box.hidden = true; return; }
  const it = state.items[state.focus];
  if (!it) return;
  if (!it.scene_url) { toast("No scene kept for this face (the daemon's logging.scene_width is 0)"); return; }
  $("#scene-img").src = it.scene_url;
  $("#scene-caption").textContent = `#${it.id} · ${fmtTime(it.ts)}` + (it.track === null ? "" : ` · track ${it.track}`) + " · v or Esc closes";
  box.hidden = false;
}

// ---------- rendering ----------
function renderCard(item) {
  const card = el("div", "card");
  card.dataset.id = item.id;
  card.setAttribute("role", "option");
  const thumb = el("div", "thumb");
  const img = el("img");
  img.loading = "lazy";
  img.alt = `face ${item.id}`;
  img.src = item.crop_url;
  img.onerror = () => img.classList.add("broken");
  thumb.appendChild(img);
  card.appendChild(thumb);
  card.appendChild(el("div", "meta"));
  fillCard(card, item);
  card.addEventListener("click", (ev) => {
    if (ev.target.closest(".stack")) { toggleOpen(state.byId.get(item.id)); paintFocus(false); return; }
    onCardClick(ev, state.byId.get(item.id));
  });
  return card;
}

function fillCard(card, item) {
  const folder = state.info.mode === "folder";
  card.classList.toggle("reviewed", item.reviewed);
  card.classList.toggle("notface", item.not_face);
  card.dataset.reviewed = item.reviewed ? (item.not_face ? "not_face" : item.review_label) : "";
  const thumb = card.querySelector(".thumb");
  thumb.querySelector(".verdict")?.remove();
  if (item.reviewed) {
    let text, cls;
    if (item.not_face) { text = "✕ not a face"; cls = "not_face"; }
    else if (item.review_label === item.label) { text = "✓ " + item.review_label; cls = item.review_label; }
    else { text = "✎ " + item.review_label; cls = item.review_label; }
    thumb.appendChild(el("span", "verdict " + labelClass(cls), text));
  }
  const meta = card.querySelector(".meta");
  meta.replaceChildren();
  const row1 = el("div", "row1");
  const corrected = item.reviewed && !item.not_face && item.label && item.review_label !== item.label;
  // No prediction (folder mode): show the reviewer's label there once there is one.
  const shown = item.label || (item.reviewed && !item.not_face ? item.review_label : null);
  const pred = el("span", "pred " + labelClass(shown) + (corrected ? " struck" : ""),
    shown || (folder ? "unlabeled" : "–"));
  row1.appendChild(pred);
  if (item.confidence !== null) row1.appendChild(el("span", "conf", pct(item.confidence)));
  meta.appendChild(row1);
  if (item.confidence !== null) {
    const bar = el("div", "confbar " + labelClass(item.label));
    const fill = el("i");
    fill.style.width = Math.round(item.confidence * 100) + "%";
    bar.appendChild(fill);
    meta.appendChild(bar);
  }
  const row2 = el("div", "row2");
  row2.appendChild(el("span", "", fmtTime(item.ts)));
  if (folder) row2.appendChild(el("span", "", item.name)).title = item.name;
  else row2.appendChild(el("span", "", item.track === null ? "" : "track " + item.track));
  meta.appendChild(row2);
  if (item.probs && item.probs.length && !folder) {
    const top = item.probs.map((p, i) => [p, state.info.labels[i]]).sort((a, b) => b[0] - a[0]).slice(0, 3);
    card.title = `#${item.id}  ` + top.map(([p, l]) => `${l} ${pct(p)}`).join(" · ");
  }
}

function paintFocus(scroll = true) {
  const cards = $("#grid").children;
  document.querySelectorAll(".card.focused").forEach((c) => c.classList.remove("focused"));
  for (const c of cards) {
    const sel = state.selected.has(Number(c.dataset.id));
    c.classList.toggle("selected", sel);
    c.setAttribute("aria-selected", sel);
  }
  const card = cards[state.focus];
  if (card) {
    card.classList.add("focused");
    if (scroll) card.scrollIntoView({ block: "nearest", behavior: "auto" });
  }
  const target = $("#target");
  target.replaceChildren();
  if (state.selected.size) {
    target.appendChild(el("b", "", `${state.selected.size} selected`));
  } else if (state.items[state.focus] && stackOf(state.focus).length > 1) {
    const it = state.items[state.focus];
    target.appendChild(el("b", "", `track ${it.track}`));
    target.appendChild(document.createTextNode(` · ${stackOf(state.focus).length} faces`));
  } else if (state.items[state.focus]) {
    target.appendChild(el("b", "", `#${state.items[state.focus].id}`));
    target.appendChild(document.createTextNode(` · ${state.focus + 1} of ${state.total}`));
  } else {
    target.textContent = "—";
  }
}

function renderStats(s) {
  const folder = state.info.mode === "folder";
  $("#progress-text").replaceChildren(
    document.createTextNode("Reviewed "), el("b", "", s.reviewed.toLocaleString()),
    document.createTextNode(" of "), el("b", "", s.total.toLocaleString()),
    document.createTextNode(s.total ? `  (${Math.floor((100 * s.reviewed) / s.total)}%)` : ""));
  document.title = `moodcam review · ${s.reviewed}/${s.total}`;
  $("#progress-bar").style.width = s.total ? (100 * s.reviewed) / s.total + "%" : "0";
  for (const chip of document.querySelectorAll(".chip")) {
    chip.querySelector(".n").textContent = (s.predicted[chip.dataset.label] || 0).toLocaleString();
  }
  const a = s.accuracy;
  const acc = $("#accuracy");
  acc.replaceChildren();
  const chip = $("#accuracy-chip");
  chip.replaceChildren();
  if (a.value !== null) {
    acc.appendChild(el("div", "big", pct(a.value)));
    acc.appendChild(el("div", "sub", `${a.correct} of ${a.judged} reviewed faces right · 95% interval ${pct(a.interval95[0])}–${pct(a.interval95[1])}`));
    if (a.not_face) acc.appendChild(el("div", "sub", `${a.not_face} detections were not faces`));
    chip.append("Accuracy ", el("b", "", pct(a.value)), ` (n=${a.judged})`);
  } else {
    acc.appendChild(el("div", "sub", folder ? "No predictions here: label with 1–7." : "Review some faces to estimate the model's accuracy."));
  }
  renderConfusion(s, folder && a.judged === 0);
}

function renderConfusion(s, hide) {
  const table = $("#confusion");
  table.replaceChildren();
  table.hidden = hide;
  $("#confusion-note").hidden = hide;
  if (hide) return;
  const short = { angry: "angry", disgust: "disg.", fear: "fear", happy: "happy", sad: "sad", surprise: "surpr.", neutral: "neutr.", not_face: "no face" };
  const head = el("tr");
  head.appendChild(el("th"));
  for (const c of s.confusion.columns) head.appendChild(el("th", labelClass(c), short[c] || c));
  table.appendChild(el("thead")).appendChild(head);
  const body = el("tbody");
  s.confusion.matrix.forEach((row, i) => {
    const tr = el("tr");
    const p = s.confusion.rows[i];
    tr.appendChild(el("th", "", p));
    const n = row.reduce((x, y) => x + y, 0);
    row.forEach((v, j) => {
      const td = el("td", (v ? "" : "zero") + (s.confusion.columns[j] === p ? " diag" : ""), v || "·");
      if (v) {
        const share = v / n;
        const diag = s.confusion.columns[j] === p;
        td.style.background = diag ? `rgba(140, 207, 126, ${0.15 + 0.6 * share})` : `rgba(232, 115, 122, ${0.12 + 0.6 * share})`;
      }
      td.title = `model said ${p}, you said ${s.confusion.columns[j]}: ${v}`;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  table.appendChild(body);
}

// ---------- actions ----------
function targets() {
  if (state.selected.size) {
    const out = new Map();  // a selected track's faces, once each
    state.items.forEach((it, i) => { if (state.selected.has(it.id)) stackOf(i).forEach((f) => out.set(f.id, f)); });
    return [...out.values()];
  }
  return state.items[state.focus] ? stackOf(state.focus) : [];
}

function act(action, label) {
  const items = targets();
  if (!items.length) return;
  const bulk = state.selected.size > 0;
  let list = items;
  if (action === "accept") {
    // "uncertain" (below classifier.min_confidence) is no label to accept.
    list = items.filter((it) => it.label && state.info.labels.includes(it.label));
    if (!list.length) { toast("No prediction to accept here: press 1–7 to label.", true); return; }
  }
  const changes = list.map((it) => (action === "label" ? { id: it.id, action, label } : { id: it.id, action }));
  // The server takes at most MAX_CHANGES per request; a huge selection goes in chunks.
  for (let i = 0; i < changes.length; i += MAX_CHANGES) send(changes.slice(i, i + MAX_CHANGES), true);
  if (bulk) state.selected.clear();
  else move(1, false);
  paintFocus();
}

function undo() {
  // Decided when the queue gets here, not at the key press: an action still being saved has not
  // recorded its undo yet, and popping now would undo the one before it.
  state.pending++;
  state.queue = state.queue.then(async () => {
    const before = state.undo.pop();
    if (!before) { state.pending--; toast("Nothing to undo"); return; }
    const changes = before.map((b) => {
      if (!b.reviewed) return { id: b.id, action: "clear" };
      if (b.not_face) return { id: b.id, action: "not_face" };
      return { id: b.id, action: "label", label: b.review_label };
    });
    await post(changes, false);
    const i = state.byId.get(before[0].id);
    if (i !== undefined) { state.focus = i; paintFocus(); }
    toast(`Undone (${before.length} face${before.length > 1 ? "s" : ""})`);
  });
}

// Requests go one after another, so an undo never overtakes the action it undoes.
function send(changes, recordUndo) {
  state.pending++;
  state.queue = state.queue.then(() => post(changes, recordUndo));
}

// One save, run from the queue; the caller counted it in state.pending.
async function post(changes, recordUndo) {
  setSaved("saving", "Saving…");
  try {
    const r = await api("/api/reviews", { method: "POST", body: { changes } });
    if (recordUndo) state.undo.push(r.before);
    if (state.undo.length > 500) state.undo.shift();
    for (const item of r.items) {
      const i = state.byId.get(item.id);
      if (i === undefined) continue;
      state.items[i] = item;
      fillCard($("#grid").children[i], item);
    }
    layoutGroups();
    if (--state.pending === 0) setSaved("saved", "All changes saved");
    refreshStats();
  } catch (e) {
    state.pending--;
    setSaved("error", "Not saved!");
    toast("Not saved: " + e.message, true);
  }
}

// ---------- focus, selection, keys ----------
function columns() {
  const cards = [...$("#grid").children].filter((c) => !c.hidden);
  if (cards.length < 2) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  for (const c of cards) { if (c.offsetTop !== top) break; n++; }
  return Math.max(1, n);
}

function move(delta, extend) {
  // Over the cards shown: with tracks grouped, a closed track is one step.
  const shown = visible();
  const n = shown.length;
  if (!n) return;
  const from = Math.max(0, shown.indexOf(state.focus));
  let to = from + delta;
  if (to >= n && state.items.length < state.total) { load(false); }
  to = Math.max(0, Math.min(n - 1, to));
  if (extend) {
    if (state.anchor === null) state.anchor = from;
    state.selected.clear();
    const [a, b] = state.anchor < to ? [state.anchor, to] : [to, state.anchor];
    for (let i = a; i <= b; i++) state.selected.add(state.items[shown[i]].id);
  } else {
    state.anchor = null;
  }
  state.focus = shown[to];
  if (to >= n - columns() && state.items.length < state.total) load(false);
}

// Bigger or smaller faces (+ / -), remembered in this browser.
function zoom(delta) {
  const size = Math.max(120, Math.min(360, (Number(localStorage.getItem("moodcam.thumb")) || 176) + delta));
  localStorage.setItem("moodcam.thumb", size);
  document.documentElement.style.setProperty("--thumb", size + "px");
}

// The daemon keeps logging while you review: say when new faces match, without moving the grid.
async function pollNew() {
  if (document.hidden || state.loading || !state.info) return;
  try {
    const f = readFilters();
    const data = await api(`/api/faces?${query(f)}&limit=1`);
    const extra = data.total - state.total;
    const e = $("#new-faces");
    e.hidden = extra <= 0;
    e.textContent = extra > 0 ? `${extra} new · press r` : "";
  } catch (e) { /* the next poll will tell */ }
}

function nextUnreviewed() {
  const shown = visible();
  const n = shown.length;
  const from = shown.indexOf(state.focus);
  for (let step = 1; step <= n; step++) {
    const i = shown[(from + step) % n];
    if (stackOf(i).some((it) => !it.reviewed)) { state.focus = i; state.anchor = null; return; }
  }
  toast(state.items.length < state.total ? "All loaded faces are reviewed: scroll on for more" : "Every face here is reviewed");
}

function onCardClick(ev, index) {
  const id = state.items[index].id;
  if (ev.shiftKey) {
    const a = Math.min(state.focus, index), b = Math.max(state.focus, index);
    for (let i = a; i <= b; i++) state.selected.add(state.items[i].id);
  } else if (ev.ctrlKey || ev.metaKey) {
    if (state.selected.has(id)) state.selected.delete(id); else state.selected.add(id);
  }
  state.focus = index;
  paintFocus(false);
}

function onKey(ev) {
  const t = ev.target;
  if (t.matches("input, select, textarea")) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if (ev.altKey) return;
  const mod = ev.ctrlKey || ev.metaKey;
  const k = ev.key;
  let handled = true;
  if (mod) {
    if (k === "a" || k === "A") { visible().forEach((i) => state.selected.add(state.items[i].id)); }
    else if (k === "z" || k === "Z") { undo(); }
    else handled = false;
  } else if (k === "ArrowRight") move(1, ev.shiftKey);
  else if (k === "ArrowLeft") move(-1, ev.shiftKey);
  else if (k === "ArrowDown") move(columns(), ev.shiftKey);
  else if (k === "ArrowUp") move(-columns(), ev.shiftKey);
  else if (k === "Home") move(-state.items.length, ev.shiftKey);
  else if (k === "End") move(state.items.length, ev.shiftKey);
  else if (k >= "1" && k <= "7" && k.length === 1) act("label", state.info.labels[Number(k) - 1]);
  else if (k === "Enter" || k === " ") act("accept");
  else if (k === "x" || k === "X") act("not_face");
  else if (k === "Backspace" || k === "Delete" || k === "0") act("clear");
  else if (k === "u" || k === "U") undo();
  else if (k === "s" || k === "S") {
    const it = state.items[state.focus];
    if (it) { if (state.selected.has(it.id)) state.selected.delete(it.id); else state.selected.add(it.id); }
  } else if (k === "Escape") { state.selected.clear(); state.anchor = null; $("#scene").hidden = true; }
  else if (k === "r" || k === "R") { load(true); }
  else if (k === "n" || k === "N") { nextUnreviewed(); }
  else if (k === "g" || k === "G") { toggleGrouped(); }
  else if (k === "e" || k === "E") { toggleOpen(state.focus); }
  else if (k === "v" || k === "V") { showScene(); }
  else if (k === "l" || k === "L") { toggleLive(); }
  else if (k === "+" || k === "=") { zoom(40); }
  else if (k === "-") { zoom(-40); }
  else handled = false;
  if (handled) {
    ev.preventDefault();
    paintFocus();
  }
}

// ---------- start ----------
function buildControls() {
  const chips = $("#chips");
  const buttons = $("#label-buttons");
  const legend = $("#key-labels");
  state.info.labels.forEach((label, i) => {
    const chip = el("button", "chip " + labelClass(label));
    chip.type = "button";
    chip.dataset.label = label;
    chip.setAttribute("aria-pressed", "false");
    chip.append(label, el("span", "n", ""));
    chip.addEventListener("click", () => {
      chip.blur();  // keys belong to the grid, not to the last button clicked
      chip.setAttribute("aria-pressed", chip.getAttribute("aria-pressed") !== "true");
      load(true);
    });
    chips.appendChild(chip);
    const b = el("button", "lab " + labelClass(label));
    b.type = "button";
    b.dataset.act = "label";
    b.dataset.label = label;
    b.title = `Label ${label} (${i + 1})`;
    b.append(el("kbd", "", String(i + 1)), label);
    buttons.appendChild(b);
    const k = el("span", "lab " + labelClass(label));
    k.append(el("kbd", "", String(i + 1)), " " + label);
    legend.appendChild(k);
  });
  $("#actionbar").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-act]");
    if (!b) return;
    b.blur();
    if (b.dataset.act === "undo") undo(); else act(b.dataset.act, b.dataset.label);
    paintFocus();
  });
  document.querySelectorAll('input[name="reviewed"]').forEach((r) => r.addEventListener("change", () => { r.blur(); load(true); }));
  for (const id of ["#min-conf", "#max-conf", "#since", "#until", "#order"]) $(id).addEventListener("change", () => load(true));
  $("#reset").addEventListener("click", () => { $("#reset").blur(); history.replaceState(null, "", "#"); applyHash(); load(true); });
  $("#accuracy-chip").addEventListener("click", () => $("#accuracy-section").scrollIntoView({ behavior: "smooth" }));
  $("#new-faces").addEventListener("click", () => { $("#new-faces").blur(); load(true); });
  $("#more-button").addEventListener("click", () => load(false));
  if (state.info.mode === "folder") {
    $("#confidence-section").hidden = true;
    $("#order").querySelector('option[value="confidence"]').remove();
    $("#label-heading").textContent = "Folder label";
  }
  $("#group-toggle").setAttribute("aria-pressed", state.grouped);
  $("#group-toggle").addEventListener("click", () => { $("#group-toggle").blur(); toggleGrouped(); paintFocus(false); });
  $("#live-toggle").hidden = !state.info.live;
  $("#live-toggle").addEventListener("click", () => { $("#live-toggle").blur(); toggleLive(); });
  $("#scene").addEventListener("click", () => { $("#scene").hidden = true; });
  document.addEventListener("keydown", onKey);
  window.addEventListener("beforeunload", (ev) => { if (state.pending) ev.preventDefault(); });
  window.addEventListener("resize", () => paintFocus(false));
}

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (e) {
    $("#progress-text").textContent = "Cannot reach the review server: " + e.message;
    return;
  }
  $("#source").textContent = (state.info.mode === "folder" ? "folder " : "") + state.info.source;
  $("#source").title = state.info.source;
  buildControls();
  applyHash();
  zoom(0);
  setInterval(pollNew, 15000);
  await load(true);
}

start();
