// The operator's view of the Computing Platform. Reads the JSON API only (relative URLs, so the
// page works behind a path prefix), refreshes every few seconds, loads nothing from elsewhere.
// Customer details (accounts, addresses) come only with the admin token: the page keeps it in
// sessionStorage (this tab, until it closes) and sends it as "Authorization: Bearer" on every fetch.
// It polls (no EventSource, which cannot send that header).
"use strict";

const API = "api/v1/";
const REFRESH_MS = 4000;        // bundles, events, receiver health
const MAP_EVERY = 4;            // the Grid Map and its GeoJSON every 4th refresh
const N_BUNDLES = 30;
const N_EVENTS = 100;
const BODY_FETCHES = 6;         // bundle bodies fetched at once
const STALE_S = 60;
const FEEDER_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                        "#bcbd22", "#7f7f7f"];
const SVG_NS = "http://www.w3.org/2000/svg";

const S = {
  tick: 0, info: null, tree: null, geo: null, bundles: [], bodies: new Map(), events: [], theft: [], theftAlerts: [],
  health: [],
  open: new Map(),           // tree node key -> open?
  expanded: new Set(),       // bundle ids whose copies are shown
  firstBundles: true, treeSig: "", mapSig: "", errors: {}, lastOk: null, tokenRefused: false,
};

// ---- small helpers -------------------------------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}
function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}
const $ = (id) => document.getElementById(id);
const plural = (n, one, many) => `${n} ${n === 1 ? one : (many || one + "s")}`;
const num = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : Number(x).toFixed(d);
const int = (x) => (x === null || x === undefined) ? "–" : Number(x).toLocaleString("en-US");
const pct = (x) => (x === null || x === undefined) ? "–" : `${Math.round(100 * x)} %`;
const short = (id) => String(id).slice(0, 8);
const feederColour = (f) => (f === null || f === undefined) ? "#9aa5b1" : FEEDER_COLOURS[Math.abs(f) % FEEDER_COLOURS.length];
function utc(iso) {
  if (!iso) return "–";
  return String(iso).replace("T", " ").replace(/(\.\d+)?(Z|[+-]00:00)$/, "").slice(0, 19);
}
function age(sec) {
  if (sec === null || sec === undefined) return "never";
  if (sec < 1) return "just now";
  if (sec < 90) return `${Math.round(sec)} s ago`;
  if (sec < 5400) return `${Math.round(sec / 60)} min ago`;
  if (sec < 172800) return `${Math.round(sec / 3600)} h ago`;
  return `${Math.round(sec / 86400)} d ago`;
}
function duration(sec) {
  if (sec === null || sec === undefined) return "–";
  if (sec < 120) return `${num(sec, sec < 10 ? 1 : 0)} s`;
  if (sec < 7200) return `${num(sec / 60, 1)} min`;
  return `${num(sec / 3600, 1)} h`;
}
function badge(text, kind, title) { return h("span", {class: `badge ${kind || ""}`, title}, text); }
function statusKind(st) {
  return ({open: "bad", suspected: "warn", applied: "ok", resolved: "ok", info: "info", accepted: "ok",
           rejected: "bad", duplicate: "", no_frame: "warn", dismissed: "", withdrawn: "", superseded: ""})[st] || "";
}
// theft: the platform's own analysis (theft_alert) and what hubs report of their TAN (tan_anomaly)
const isTheft = (e) => e.type === "theft_alert" ||
  (e.type === "tan_anomaly" && (e.details || {}).anomaly === "theft_suspicion");
const isOpen = (e) => e.status === "open" || e.status === "suspected";

// ---- the admin token (optional) -----------------------------------------------------------------
const TOKEN_KEY = "gla.adminToken";
function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
}
function setToken(value, refused = false) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage disabled: the page shows what anyone may see */ }
  S.tokenRefused = refused;
  renderSignin();
}
// "#token=<admin token>" in the address (kiosks, scripts): stored, then taken out of the address
// and the history; a fragment never reaches the server or its logs
function tokenFromFragment() {
  const m = /^#token=(.+)$/.exec(location.hash || "");
  if (!m) return;
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}
function renderSignin() {
  const box = $("signin");
  if (!box) return;
  if (token()) {
    box.replaceChildren(h("span", {class: "who"}, "operator"), " ",
      h("button", {type: "button", onclick: () => { setToken(""); S.tick = 0; loop(true); }}, "Sign out"));
    return;
  }
  const input = h("input", {type: "password", id: "token", placeholder: "admin token", autocomplete: "off",
                             "aria-label": "admin token", size: 14});
  box.replaceChildren(
    h("span", {class: "refused"}, S.tokenRefused ? "token not accepted " : ""),
    h("form", {onsubmit: (ev) => { ev.preventDefault(); if (input.value.trim()) { setToken(input.value.trim()); loop(true); } }},
      input, " ", h("button", {type: "submit"}, "Sign in")));
}

async function getJSON(path) {
  const headers = {Accept: "application/json"};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const r = await fetch(API + path, {cache: "no-store", headers});
  if (r.status === 401 && t) setToken("", true);  // an unknown token: forget it, say so
  if (!r.ok) throw new Error(`${path.split("?")[0]}: HTTP ${r.status}`);
  return r.json();
}

// ---- fetching ------------------------------------------------------------------------------------
async function refresh() {
  const withMap = S.tick % MAP_EVERY === 0 || !S.tree;
  S.tick += 1;
  const jobs = {
    info: getJSON("info"),
    bundles: getJSON(`bundles?limit=${N_BUNDLES}`),
    events: getJSON(`events?limit=${N_EVENTS}`),
    theft: getJSON(`events?type=tan_anomaly&limit=${N_EVENTS}`),
    theftAlerts: getJSON(`events?type=theft_alert&limit=${N_EVENTS}`),
    health: getJSON("receivers/health"),
  };
  if (withMap) {
    jobs.tree = getJSON("gridmap");
    jobs.geo = getJSON("gridmap.geojson?kinds=substation&kinds=transformer");
  }
  const names = Object.keys(jobs);
  const res = await Promise.allSettled(Object.values(jobs));
  res.forEach((r, i) => {
    const n = names[i];
    if (r.status === "fulfilled") { S[n] = r.value; delete S.errors[n]; }
    else S.errors[n] = r.reason && r.reason.message ? r.reason.message : String(r.reason);
  });
  S.theft = [...new Map([...(S.theftAlerts || []), ...(S.theft || [])].map((e) => [e.id, e])).values()]
    .filter(isTheft).sort((a, b) => String(b.occurred_at || b.created_at).localeCompare(String(a.occurred_at || a.created_at)));
  if (S.firstBundles && S.bundles.length && !S.errors.bundles) {
    S.firstBundles = false;
    S.expanded.add(S.bundles[0].bundle_id); // show what a bundle is made of, once
  }
  await loadBodies();
  if (!names.some((n) => S.errors[n]) && !S.errors.bodies) S.lastOk = new Date();
}

async function loadBodies() {
  // bodies are immutable (bundle_id is the idempotency key): fetch each once
  delete S.errors.bodies;
  const want = S.bundles.map((b) => b.bundle_id).filter((id) => !S.bodies.has(id));
  let next = 0;
  async function worker() {
    while (next < want.length) {
      const id = want[next++];
      try {
        const r = await getJSON(`bundles/${encodeURIComponent(id)}?body=true`);
        S.bodies.set(id, r.bundle || {});
      } catch (e) { S.errors.bodies = e.message; }
    }
  }
  await Promise.all(Array.from({length: Math.min(BODY_FETCHES, want.length)}, worker));
  const keep = new Set(S.bundles.map((b) => b.bundle_id));
  for (const id of S.bodies.keys()) if (!keep.has(id) && S.bodies.size > 4 * N_BUNDLES) S.bodies.delete(id);
}

// ---- the Grid Map: counts and an index ----------------------------------------------------------
function treeStats(tree) {
  const st = {substations: 0, feeders: 0, transformers: new Set(), hubs: 0, meters: 0, byTransformer: new Map(),
              unplaced: (tree && tree.unplaced_hubs) || []};
  if (!tree) return st;
  for (const sub of tree.substations || []) {
    st.substations += 1;
    for (const bus of sub.buses || []) for (const fd of bus.feeders || []) {
      st.feeders += 1;
      for (const ph of fd.phases || []) for (const tan of ph.tans || []) {
        st.hubs += 1;
        st.meters += (tan.meters || []).filter((m) => m.active !== false).length;
        const tid = tan.transformer_id || tan.tan_id;
        st.transformers.add(tid);
        if (!st.byTransformer.has(tid)) st.byTransformer.set(tid, []);
        st.byTransformer.get(tid).push({...tan, feeder: fd.feeder, phase: ph.phase, bus: bus.bus,
                                        substation_id: sub.substation_id});
      }
    }
  }
  st.hubs += st.unplaced.length;
  return st;
}

// ---- rendering -----------------------------------------------------------------------------------
function renderHeader() {
  const st = treeStats(S.tree);
  const info = S.info || {};
  $("title").textContent = `GLA ${info.mode === "concentrator" ? "Concentrator" : "Computing Platform"}` +
    (info.substation_id && info.mode !== "concentrator" ? ` · ${info.substation_id}` : "");
  document.title = `${$("title").textContent} — operator's view`;
  const openEv = S.events.filter((e) => isOpen(e) && !isTheft(e)).length;
  const openTheft = S.theft.filter(isOpen).length;
  const reporting = S.health.filter((r) => r.age_s !== null && !r.stale).length;
  const cap = (list, n, limit = N_EVENTS) => list.length >= limit ? `${n}+` : String(n);
  const parts = [
    [st.substations, "substation"], [st.feeders, "feeder"], [st.transformers.size, "transformer"], [st.hubs, "hub"],
    [st.meters, "meter"],
  ].map(([n, w]) => h("span", {}, h("b", {}, n), ` ${n === 1 ? w : w + "s"}`));
  parts.push(h("span", {title: "bundles listed below (the newest)"}, h("b", {}, cap(S.bundles, S.bundles.length, N_BUNDLES)),
               ` bundle${S.bundles.length === 1 ? "" : "s"}`));
  parts.push(h("span", {class: openEv ? "alert" : ""}, h("b", {}, cap(S.events, openEv)), ` open event${openEv === 1 ? "" : "s"}`));
  parts.push(h("span", {class: openTheft ? "alert" : ""}, h("b", {}, openTheft), ` theft alert${openTheft === 1 ? "" : "s"}`));
  parts.push(h("span", {class: reporting < S.health.length ? "alert" : ""},
               h("b", {}, `${reporting}/${S.health.length}`), " receivers up"));
  const line = [];
  parts.forEach((p, i) => { if (i) line.push(" · "); line.push(p); });
  $("counts").replaceChildren(...line);
  const bad = Object.keys(S.errors).length > 0;
  $("conn").className = `dot ${bad ? "bad" : "ok"}`;
  $("updated-text").textContent = S.lastOk ? `updated ${S.lastOk.toISOString().slice(11, 19)} UTC` : "not updated yet";
  const box = $("errors");
  if (bad) {
    box.hidden = false;
    box.textContent = "The platform did not answer everything (showing the last data): " + Object.values(S.errors).join("; ");
  } else box.hidden = true;
}

function renderHealth() {
  const rows = S.health;
  if (!rows.length) {
    $("health").replaceChildren(h("p", {class: "empty"}, "No receiver registered or reporting yet."));
    return;
  }
  const head = h("tr", {}, ["Receiver", "Status", "Lag", "Gaps", "Spool depth", "Bundles", "CRC failures",
                            "Stream time", "Last report"].map((t, i) => h("th", {class: i >= 2 ? "num" : ""}, t)));
  const body = rows.map((r) => {
    const never = r.age_s === null || r.age_s === undefined;
    const st = never ? badge("no report", "bad") : r.stale ? badge("stale", "bad") :
      r.lag_s > 30 ? badge("lagging", "warn") : badge("ok", "ok");
    const lagCls = r.lag_s > 30 ? "bad-text" : r.lag_s > 5 ? "warn-text" : "";
    const spoolCls = r.spool_depth > 1000 ? "bad-text" : r.spool_depth > 50 ? "warn-text" : "";
    return h("tr", {"data-receiver": r.receiver_id},
      h("td", {}, h("b", {}, r.receiver_id), h("span", {class: "muted"}, r.substation_id ? ` (${r.substation_id})` : ""),
        r.enabled === false ? [" ", badge("disabled", "warn")] : null),
      h("td", {}, st),
      h("td", {class: `num ${lagCls}`}, never ? "–" : duration(r.lag_s)),
      h("td", {class: "num", title: never ? null : `${int(r.gap_samples)} samples missing`},
        never ? "–" : [int(r.gaps), h("span", {class: "muted"}, ` (${int(r.gap_samples)} smp)`)]),
      h("td", {class: `num spool ${spoolCls}`}, int(r.spool_depth)),
      h("td", {class: "num"}, int(r.bundles)),
      h("td", {class: "num"}, never ? "–" : [int(r.crc_failures),
        r.bundles ? h("span", {class: "muted"}, ` (${pct(r.crc_failures / r.bundles)})`) : null]),
      h("td", {class: "num"}, never ? "–" : duration(r.stream_time_s)),
      h("td", {class: "num", title: r.received_at ? `received ${utc(r.received_at)} UTC; receiver clock ${utc(r.reported_at)}` : null},
        age(r.age_s)));
  });
  $("health").replaceChildren(h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

function evidence(ids) {
  const list = ids || [];
  const shown = list.slice(-6).reverse();
  const out = shown.map((id) => h("a", {class: "chip mono", title: `bundle ${id}`, href: `${API}bundles/${id}?body=true`,
    target: "_blank", onclick: (ev) => { if (showBundle(id)) ev.preventDefault(); }}, short(id)));
  if (list.length > shown.length) out.push(h("span", {class: "muted"}, `+${list.length - shown.length} more`));
  return out.length ? out : h("span", {class: "muted"}, "–");
}

function renderTheft() {
  const rows = S.theft;
  if (!rows.length) {
    $("theft").replaceChildren(h("p", {class: "empty"}, "No theft alert."));
    return;
  }
  const head = h("tr", {}, ["Since (UTC)", "Found by", "Meter · hub", "Account · address", "Unaccounted",
                            "Conf.", "Status", "Evidence"]
    .map((t, i) => h("th", {class: i === 4 || i === 5 ? "num" : ""}, t)));
  const body = rows.map((e) => {
    const d = e.details || {};
    const platform = e.type === "theft_alert";
    const m0 = (d.meters || [])[0] || {};
    return h("tr", {"data-event": e.id, title: e.title},
      h("td", {}, utc(e.occurred_at || e.created_at)),
      h("td", {}, platform ? `platform (${d.analysis || "analysis"})` : "hub"),
      h("td", {class: "mono"}, platform ? `${(d.meter_ids || []).join(", ")} · ${m0.hub_id ?? "–"}`
                                        : `${d.meter_id ?? `TAN #${d.tan_index}`} · ${d.hub_id ?? e.subject_id}`),
      h("td", {class: "wrap"}, [d.account, d.address].filter(Boolean).join(" · ") || "–"),
      h("td", {class: "num"}, d.unaccounted_w !== undefined ? `${int(d.unaccounted_w)} W` : "–"),
      h("td", {class: "num"}, pct(e.confidence)),
      h("td", {}, badge(e.status, statusKind(e.status))),
      h("td", {}, evidence(e.evidence)));
  });
  const note = token() ? null : h("p", {class: "empty signin-note"}, "Sign in to see customer details (account, address).");
  $("theft").replaceChildren(...[note, h("table", {}, h("thead", {}, head), h("tbody", {}, body))].filter(Boolean));
}

function renderEvents() {
  const rows = S.events.filter((e) => !isTheft(e));
  if (!rows.length) {
    $("events").replaceChildren(h("p", {class: "empty"}, "No event yet."));
    return;
  }
  const head = h("tr", {}, ["When (UTC)", "Type", "Status", "Confidence", "Title", "Evidence"]
    .map((t, i) => h("th", {class: i === 3 ? "num" : ""}, t)));
  const body = rows.map((e) => h("tr", {"data-event": e.id},
    h("td", {}, utc(e.occurred_at || e.created_at)),
    h("td", {}, e.type.replaceAll("_", " ")),
    h("td", {}, badge(e.status, statusKind(e.status))),
    h("td", {class: "num"}, pct(e.confidence)),
    h("td", {class: "title"}, e.title, e.observations > 1 ? h("span", {class: "muted"}, ` (${e.observations} observations)`) : null),
    h("td", {}, evidence(e.evidence))));
  $("events").replaceChildren(h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

function locText(loc) {
  return loc ? `F${loc.feeder} · ${loc.phase}` : "–";
}

function renderBundles() {
  if (!S.bundles.length) {
    $("bundles").replaceChildren(h("p", {class: "empty"}, "No bundle received yet."));
    return;
  }
  const cols = ["", "Arrival (UTC)", "Hub", "Kind", "Status", "Receiver", "Ch/code", "Inferred", "Confidence", "Margin",
                "Copies"];
  const head = h("tr", {}, cols.map((t, i) => h("th", {class: i >= 8 ? "num" : ""}, t)));
  const body = [];
  for (const b of S.bundles) {
    const full = S.bodies.get(b.bundle_id) || {};
    const inf = full.inferred;
    const copies = full.copies || [];
    const open = S.expanded.has(b.bundle_id);
    const st = b.status === "rejected" ? badge(`rejected: ${b.reason}`, "bad") : badge(b.status.replace("_", " "), statusKind(b.status));
    const toggle = () => {
      if (S.expanded.has(b.bundle_id)) S.expanded.delete(b.bundle_id); else S.expanded.add(b.bundle_id);
      renderBundles();
    };
    body.push(h("tr", {class: "bundle", id: `b-${b.bundle_id}`, "data-bundle": b.bundle_id, onclick: toggle,
                       title: `bundle ${b.bundle_id}`},
      h("td", {}, h("span", {class: "toggle"}, open ? "▾" : "▸")),
      h("td", {}, utc(b.arrival_utc)),
      h("td", {class: "mono"}, b.hub_id ?? "–"),
      h("td", {}, (b.kind || "–").replaceAll("_", " ")),
      h("td", {}, st),
      h("td", {}, b.receiver_id),
      h("td", {}, `${b.channel}/${b.code}`),
      h("td", {class: "inferred"}, inf ? [h("span", {class: "loc", title: `bus ${inf.location.bus}`}, locText(inf.location)),
        inf.ambiguous ? [" ", badge("ambiguous", "warn", inf.runner_up ? `runner-up ${locText(inf.runner_up)}` : null)] : null]
        : h("span", {class: "muted"}, S.bodies.has(b.bundle_id) ? "none" : "…")),
      h("td", {class: `num ${inf && inf.confidence < 0.8 ? "warn-text" : ""}`}, inf ? pct(inf.confidence) : "–"),
      h("td", {class: "num"}, inf ? `${num(inf.margin_db)} dB` : "–"),
      h("td", {class: "num"}, copies.length || "–")));
    if (open) body.push(h("tr", {class: "sub", "data-copies-of": b.bundle_id}, h("td", {colspan: cols.length}, copyTable(copies))));
  }
  $("bundles").replaceChildren(h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

function copyTable(copies) {
  if (!copies.length) return h("p", {class: "empty"}, "loading the copies…");
  const cols = ["Rank", "Input", "Feeder · phase", "Level", "SNR", "Eb/N0", "EVM", "Corr. peak", "Pre-FEC errors",
                "Polarity", "CRC", "Arrival (UTC)"];
  return h("table", {class: "copies"},
    h("thead", {}, h("tr", {}, cols.map((t, i) => h("th", {class: i >= 3 && i <= 8 ? "num" : ""}, t)))),
    h("tbody", {}, copies.map((c, i) => h("tr", {},
      h("td", {}, `#${i + 1}`),
      h("td", {}, c.input_index),
      h("td", {class: "loc"}, `bus ${c.bus} · F${c.feeder} · ${c.phase}`),
      h("td", {class: "num level"}, `${num(c.level_db)} dB`),
      h("td", {class: "num"}, `${num(c.snr_db)} dB`),
      h("td", {class: "num"}, `${num(c.ebn0_db)} dB`),
      h("td", {class: "num"}, `${num(c.evm_pct)} %`),
      h("td", {class: "num"}, num(c.corr_peak)),
      h("td", {class: "num"}, c.pre_fec_bit_errors ?? "–"),
      h("td", {}, c.polarity > 0 ? "+1" : c.polarity < 0 ? "−1" : String(c.polarity)),
      h("td", {}, c.crc_ok ? badge("CRC ok", "ok") : badge("CRC fail", "bad")),
      h("td", {}, utc(c.arrival_utc))))));
}

function showBundle(id) {
  const row = document.getElementById(`b-${id}`);
  if (!row) return false;
  S.expanded.add(id);
  renderBundles();
  const again = document.getElementById(`b-${id}`);
  again.scrollIntoView({block: "center", behavior: "smooth"});
  again.classList.add("flash");
  return true;
}

// ---- the tree ------------------------------------------------------------------------------------
function node(key, dflt, summary, kids) {
  const open = S.open.has(key) ? S.open.get(key) : dflt;
  const d = h("details", {"data-key": key, open: open}, h("summary", {}, summary), kids);
  d.addEventListener("toggle", () => S.open.set(key, d.open));
  return d;
}

function renderTree(force) {
  const sig = JSON.stringify(S.tree && {s: S.tree.substations, u: S.tree.unplaced_hubs, x: S.tree.sections});
  if (!force && sig === S.treeSig) return;
  S.treeSig = sig;
  const tree = S.tree;
  if (!tree || !(tree.substations || []).length) {
    $("tree").replaceChildren(h("p", {class: "empty"}, "The Grid Map is empty: import a model (POST /api/v1/import/json)."));
    return;
  }
  const sections = new Map((tree.sections || []).map((x) => [x.section_id, x]));
  const out = tree.substations.map((sub) => subNode(sub, sections));
  const u = tree.unplaced_hubs || [];
  if (u.length) {
    out.push(h("p", {class: "unplaced", title: u.join(", ")},
      `${plural(u.length, "hub")} in the Inventory but not on the map: ${u.slice(0, 12).join(", ")}${u.length > 12 ? " …" : ""}`));
  }
  $("tree").replaceChildren(...out);
}

const meterCount = (tans) => tans.reduce((a, t) => a + (t.meters || []).length, 0);
const sizes = (tans) => `${plural(tans.length, "transformer")} · ${plural(meterCount(tans), "meter")}`;

function subNode(sub, sections) {
  const sk = `s:${sub.substation_id}`;
  const tans = (sub.buses || []).flatMap((b) => b.feeders.flatMap((f) => f.phases.flatMap((p) => p.tans)));
  return node(sk, true, [h("span", {class: "what"}, "substation"), h("b", {}, sub.name || sub.substation_id),
    sub.name ? h("span", {class: "meta mono"}, sub.substation_id) : null, h("span", {class: "meta"}, sizes(tans))],
  (sub.buses || []).map((bus) => node(`${sk}:b${bus.bus}`, true,
    [h("span", {class: "what"}, "bus"), h("b", {}, bus.bus), h("span", {class: "meta"}, plural(bus.feeders.length, "feeder"))],
    bus.feeders.map((fd) => feederNode(`${sk}:b${bus.bus}:f${fd.feeder}`, fd, sections)))));
}

function feederNode(fk, fd, sections) {
  const secs = (fd.sections || []).map((id) => sections.get(id)).filter(Boolean);
  const dark = secs.filter((x) => x.energized === false);
  const switched = secs.filter((x) => x.switched);
  const tans = fd.phases.flatMap((p) => p.tans);
  const summary = [h("span", {class: "swatch", style: `background:${feederColour(fd.feeder)}`}),
    h("span", {class: "what"}, "feeder"), h("b", {}, fd.name ? `${fd.name} (${fd.feeder})` : `Feeder ${fd.feeder}`),
    h("span", {class: "meta"}, `${sizes(tans)} · ${plural(secs.length, "section")}`),
    dark.length ? [" ", badge(`${dark.length} de-energized`, "bad", dark.map((x) => x.section_id).join(", "))] : null,
    switched.length ? [" ", badge(`${switched.length} switched in`, "info",
      switched.map((x) => `${x.section_id} (normally feeder ${x.normal_feeder})`).join(", "))] : null];
  return node(fk, true, summary, fd.phases.map((ph) => node(`${fk}:p${ph.phase}`, true,
    [h("span", {class: "what"}, "phase"), h("b", {}, `Phase ${ph.phase}`), h("span", {class: "meta"}, sizes(ph.tans))],
    ph.tans.map((tan) => tanNode(tan, sections)))));
}

function tanNode(tan, sections) {
  const sec = sections.get(tan.section_id);
  const ms = tan.meters || [];
  const summary = [h("span", {class: "what"}, "transformer"), h("b", {class: "mono"}, tan.transformer_id || "(none)"),
    h("span", {class: "meta"}, `hub ${tan.hub_id} · ${plural(ms.length, "meter")}${tan.section_id ? ` · ${tan.section_id}` : ""}`),
    tan.status && tan.status !== "active" ? [" ", badge(tan.status, tan.status === "silent" ? "warn" : "")] : null,
    sec && sec.energized === false ? [" ", badge("de-energized", "bad")] : null,
    tan.lat === null || tan.lat === undefined ? [" ", badge("no coordinates", "", "not on the map")] : null];
  const meters = h("ul", {class: "meters"}, ms.map((m) => h("li", {}, h("span", {class: "mono"}, `meter ${m.meter_id}`),
    h("span", {class: "muted"}, ` · TAN #${m.tan_index ?? "?"} · ${m.role || ""}${m.active === false ? " · inactive" : ""}`))));
  return node(`t:${tan.transformer_id || tan.tan_id}:${tan.hub_id}`, false, summary, meters);
}

function revealInTree(tid) {
  const st = treeStats(S.tree);
  for (const tan of st.byTransformer.get(tid) || []) {
    const sk = `s:${tan.substation_id}`, fk = `${sk}:b${tan.bus}:f${tan.feeder}`;
    for (const k of [sk, `${sk}:b${tan.bus}`, fk, `${fk}:p${tan.phase}`, `t:${tid}:${tan.hub_id}`]) S.open.set(k, true);
  }
  renderTree(true);
  const el = [...document.querySelectorAll("#tree details")].find((d) => d.dataset.key.startsWith(`t:${tid}:`));
  if (el) {
    el.classList.add("hl");
    el.scrollIntoView({block: "nearest"});
    setTimeout(() => el.classList.remove("hl"), 2500);
  }
}

// ---- the map (inline SVG from the GeoJSON) -------------------------------------------------------
function renderMap(force) {
  const sig = JSON.stringify([S.geo, S.treeSig.length]);
  if (!force && sig === S.mapSig) return;
  S.mapSig = sig;
  const feats = ((S.geo && S.geo.features) || []).filter((f) => f.geometry && f.geometry.type === "Point");
  const trs = feats.filter((f) => f.properties.kind === "transformer");
  const subs = feats.filter((f) => f.properties.kind === "substation");
  const st = treeStats(S.tree);
  const missing = [...st.transformers].filter((t) => !trs.some((f) => f.properties.transformer_id === t)).length;
  $("map-note").textContent = trs.length ?
    `${plural(trs.length, "transformer")} with coordinates${missing ? `, ${missing} without` : ""}; hover a dot for its hubs and meters, click to find it in the tree` : "";
  if (!trs.length) {
    $("map").replaceChildren(h("p", {class: "empty"}, st.transformers.size ?
      `None of the ${plural(st.transformers.size, "transformer")} has coordinates: import them with lat/lon to see the map.` :
      "No transformer with coordinates in the Grid Map yet."));
    $("legend").replaceChildren();
    return;
  }
  const W = 800, H = 440, PAD = 28;
  const pts = feats.map((f) => f.geometry.coordinates);
  const lat0 = pts.reduce((a, p) => a + p[1], 0) / pts.length;
  const kx = Math.cos(lat0 * Math.PI / 180);
  const xs = pts.map((p) => p[0] * kx), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const span = Math.max(x1 - x0, y1 - y0, 1e-6);
  const scale = Math.min((W - 2 * PAD) / Math.max(x1 - x0, span * 1e-3), (H - 2 * PAD) / Math.max(y1 - y0, span * 1e-3));
  const ox = (W - (x1 - x0) * scale) / 2, oy = (H - (y1 - y0) * scale) / 2;
  const X = (lon) => ox + (lon * kx - x0) * scale;
  const Y = (lat) => H - (oy + (lat - y0) * scale);

  const kids = [];
  // a faint grid every "nice" distance, and a scale bar
  const mPerUnit = 111320;                 // metres per degree of latitude (and per kx-scaled degree of longitude)
  const viewM = Math.max(W / scale, 1e-9) * mPerUnit;
  const nice = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000].find((m) => m >= viewM / 8) || 100000;
  const step = nice / mPerUnit * scale;
  if (step > 8) {
    const g = [];
    for (let x = ox % step; x < W; x += step) g.push(s("line", {x1: x, y1: 0, x2: x, y2: H}));
    for (let y = (H - oy) % step; y < H; y += step) g.push(s("line", {x1: 0, y1: y, x2: W, y2: y}));
    kids.push(s("g", {class: "grid"}, g));
    const label = nice >= 1000 ? `${nice / 1000} km` : `${nice} m`;
    kids.push(s("g", {class: "scale"}, s("line", {x1: 12, y1: H - 12, x2: 12 + step, y2: H - 12}),
      s("line", {x1: 12, y1: H - 16, x2: 12, y2: H - 8}), s("line", {x1: 12 + step, y1: H - 16, x2: 12 + step, y2: H - 8}),
      s("text", {x: 16 + step, y: H - 8}, label)));
  }
  const feeders = new Set();
  for (const f of trs) {
    const p = f.properties, [lon, lat] = f.geometry.coordinates;
    feeders.add(p.feeder);
    const tans = st.byTransformer.get(p.transformer_id) || [];
    const hubs = (p.hubs || []).map((hid) => {
      const t = tans.find((x) => x.hub_id === hid);
      const ms = t ? (t.meters || []).map((m) => m.meter_id) : [];
      return `hub ${hid}${t ? ` (phase ${t.phase})` : ""}: ${ms.length ? `meters ${ms.join(", ")}` : "no meter"}`;
    });
    const tip = [`Transformer ${p.transformer_id}`,
      `feeder ${p.feeder ?? "?"} · phase ${p.phases || "?"} · bus ${p.bus ?? "?"}`,
      p.section_id ? `section ${p.section_id}${p.energized === false ? " (DE-ENERGIZED)" : ""}` : null,
      ...hubs, `${lat.toFixed(5)}, ${lon.toFixed(5)}`].filter(Boolean).join("\n");
    kids.push(s("circle", {class: `tx-dot${p.energized === false ? " dark" : ""}`, cx: X(lon).toFixed(1), cy: Y(lat).toFixed(1),
      r: 5.5, fill: feederColour(p.feeder), stroke: p.energized === false ? feederColour(p.feeder) : null,
      "data-transformer": p.transformer_id, "data-feeder": p.feeder, "aria-label": tip,
      onmousemove: (ev) => tooltip(ev, tip), onmouseleave: () => tooltip(null),
      onclick: () => revealInTree(p.transformer_id)}));
  }
  for (const f of subs) {
    const p = f.properties, [lon, lat] = f.geometry.coordinates;
    const x = X(lon), y = Y(lat);
    const tip = `Substation ${p.name || p.substation_id} (${p.substation_id})`;
    kids.push(s("g", {class: "substation", "aria-label": tip, onmousemove: (ev) => tooltip(ev, tip), onmouseleave: () => tooltip(null)},
      s("rect", {class: "sub-mark", x: x - 7, y: y - 7, width: 14, height: 14, transform: `rotate(45 ${x} ${y})`}),
      s("text", {class: "sub-label", x: x + 11, y: y + 4}, p.name || p.substation_id)));
  }
  const svg = s("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "xMidYMid meet",
                        "aria-label": `map of ${plural(trs.length, "transformer")}`}, kids);
  $("map").replaceChildren(svg);
  const legend = [...feeders].sort((a, b) => (a ?? -1) - (b ?? -1)).map((fd) => h("span", {class: "item"},
    h("span", {class: "swatch", style: `background:${feederColour(fd)}`}), `feeder ${fd ?? "?"}`));
  legend.push(h("span", {class: "item"}, h("span", {class: "swatch", style: "background:#fff;border:1.5px dashed #777"}),
    "de-energized section"));
  legend.push(h("span", {class: "item"}, "◆ substation"));
  $("legend").replaceChildren(...legend);
}

function tooltip(ev, text) {
  const t = $("tooltip");
  if (!ev) { t.hidden = true; return; }
  t.textContent = text;
  t.hidden = false;
  const x = Math.min(ev.clientX + 14, window.innerWidth - t.offsetWidth - 8);
  const y = Math.min(ev.clientY + 14, window.innerHeight - t.offsetHeight - 8);
  t.style.left = `${x}px`;
  t.style.top = `${y}px`;
}

// ---- the loop ------------------------------------------------------------------------------------
function render() {
  const parts = [renderHealth, renderTheft, renderTree, renderMap, renderBundles, renderEvents];
  for (const f of parts) {
    try { f(); delete S.errors[f.name]; } catch (e) { S.errors[f.name] = `${f.name}: ${e.message}`; console.error(e); }
  }
  renderHeader();
}

async function loop(now) {
  if (!document.hidden || S.tick === 0 || now === true) {
    try { await refresh(); } catch (e) { S.errors.refresh = e.message; }
    render();
  }
  if (now !== true) setTimeout(loop, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => { tokenFromFragment(); renderSignin(); loop(); });
