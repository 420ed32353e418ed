// taucg's dashboard: polls the read-only REST API (relative URLs, so it
// works behind a proxy's path too) and redraws; no libraries, no network
// beyond this server.
"use strict";

const POLL_MS = 2000;
const api = (path) => fetch("api/v1/" + path, {cache: "no-store", credentials: "same-origin"})
  .then((r) => r.ok ? r.json() : r.json().then((e) => Promise.reject(
    new Error(e && e.error ? e.error.message : r.statusText))));

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
const pct = (v) => v === null || v === undefined ? "-" : v.toFixed(1) + "%";
const when = (t) => t ? new Date(t * 1000).toLocaleTimeString() : "-";
function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) =>
    el("td", {}, c)))));
}

// ------------------------------------------------------------ tiers ---

function memoryMeter(t) {
  const m = t.memory || {};
  const cur = m.current_bytes;
  const limits = [["high", m.high_bytes], ["max", m.max_bytes]].filter(([, v]) => v);
  // The scale: the hardest limit there is, else the current value itself.
  const scale = Math.max(...limits.map(([, v]) => v), cur || 0, 1);
  const meter = el("div", {class: "meter"},
    el("div", {class: "fill", style: `width:${100 * (cur || 0) / scale}%`}));
  for (const [name, v] of limits) {
    meter.append(el("div", {class: "mark " + name, title: `memory.${name} ${bytes(v)}`,
                            style: `left:calc(${100 * v / scale}% - 2px)`}));
  }
  const text = bytes(cur) + (limits.length ? " of " + limits.map(([n, v]) =>
    `${n} ${bytes(v)}`).join(", ") : " (no limit)");
  return el("div", {class: "memory", "data-bytes": String(cur ?? "")}, meter,
            el("div", {class: "meter-text"}, text));
}

function pressure(t) {
  const p = t.pressure;
  if (!p) return "-";
  const v = (x) => x ? x.some.avg10.toFixed(1) : "-";
  return `${v(p.cpu)} / ${v(p.memory)} / ${v(p.io)}`;
}

function governed(t) {
  const g = Object.entries(t.governed || {}).map(([k, v]) => `${k}=${v}`);
  if (t.governor_frozen) g.push("frozen");
  return g.length ? g.join(", ") : "-";
}

function drawTiers(doc) {
  const tbody = $("#tiers tbody");
  tbody.replaceChildren(...doc.tiers.map((t) => {
    const u = t.usage || {};
    const row = el("tr", {"data-tier": t.tier, class: t.started ? "" : "off"},
      el("td", {}, t.tier),
      el("td", {class: "cpu"}, t.started ? pct(u.cpu_percent) +
         (t.cpu_quota_percent ? ` (quota ${t.cpu_quota_percent.toFixed(0)}%)` : "") : "not started"),
      el("td", {}, t.started ? memoryMeter(t) : "-"),
      el("td", {class: "pressure"}, pressure(t)),
      el("td", {}, String(u.tasks ?? "-")),
      el("td", {class: "governed"}, governed(t)));
    return row;
  }));
}

// ------------------------------------------------------------ chart ---

let chosen = null;
function drawMetricList(doc) {
  const select = $("#metric");
  const names = doc.metrics;
  const have = Array.from(select.options).map((o) => o.value);
  if (names.join() !== have.join()) {
    select.replaceChildren(...names.map((n) => el("option", {value: n}, n)));
  }
  if (chosen === null || !names.includes(chosen)) {
    chosen = names.includes("memory_percent") ? "memory_percent" : names[0] ?? null;
  }
  if (chosen !== null) select.value = chosen;
}

function drawChart(doc) {
  const chart = $("#chart");
  const series = chosen && doc.metrics[chosen] ? doc.metrics[chosen].points : [];
  chart.replaceChildren();
  if (series.length < 1) {
    chart.append(Object.assign(svg("text", {x: 20, y: 120}), {textContent: "no points yet"}));
    return;
  }
  const W = 800, H = 240, pad = 30;
  const ts = series.map((p) => p[0]), vs = series.map((p) => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  let lo = Math.min(...vs), hi = Math.max(...vs);
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (t) => pad + (W - 2 * pad) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = (v) => H - pad - (H - 2 * pad) * (v - lo) / (hi - lo);
  for (const v of [lo, (lo + hi) / 2, hi]) {
    chart.append(svg("line", {class: "grid", x1: pad, x2: W - pad, y1: y(v), y2: y(v)}));
    chart.append(Object.assign(svg("text", {x: 2, y: y(v) - 2}), {textContent: v.toPrecision(4)}));
  }
  const d = series.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
  chart.append(svg("path", {class: "line", d: d.join(" ")}));
  chart.append(Object.assign(svg("text", {x: pad, y: H - 8}), {textContent: when(t0)}));
  chart.append(Object.assign(svg("text", {x: W - pad - 60, y: H - 8}), {textContent: when(t1)}));
  $("#metric-last").textContent = `last ${vs[vs.length - 1]} (${series.length} points)`;
  chart.dataset.points = String(series.length);
}

// ------------------------------------------------------ the rest ---

function drawHealth(h) {
  const box = $("#health");
  if (!h) { box.textContent = "no health check yet"; return; }
  box.replaceChildren(el("strong", {class: h.healthy ? "ok" : "bad"},
    `score ${h.score.toFixed(2)}`), ` (threshold ${h.threshold}) — ` +
    h.checks.map((c) => `${c.name} ${c.score === null ? "n/a" : c.score.toFixed(2)}`).join(", "));
  $("#recommendations").replaceChildren(...h.recommendations.map((r) => el("li", {}, r)));
}

function drawAlerts(a) {
  $("#active-alerts").replaceChildren(a.active.length
    ? el("strong", {class: "bad"}, "active: " + a.active.join(", "))
    : el("span", {class: "ok"}, "no active alerts"));
  fill($("#alerts tbody"), a.recent.slice(-15).reverse().map((r) =>
    [when(r.time), r.metric, r.state, String(r.value ?? "")]));
}

function drawRecovery(state, history) {
  $("#recovery").textContent = !state.running ? "the recovery watcher is not running"
    : (state.safe_mode ? "SAFE MODE · " : "") + `watching ${state.units.length} units: ` +
      state.units.join(", ");
  fill($("#crashes tbody"), history.events.slice(-15).reverse().map((e) =>
    [when(e.time), e.unit, e.result, e.action, e.outcome]));
}

function drawGovernor(g) {
  $("#governor").textContent = !g.running ? `not running: ${g.why}`
    : `protects ${g.protect.join(", ")}; stall ` + Object.entries(g.stall_percent)
      .map(([k, v]) => `${k} ${v}%`).join(", ");
  fill($("#actions tbody"), (g.actions || []).slice(-15).reverse().map((a) =>
    [when(a.time), a.kind, a.tier, `${a.key}: ${a.before} → ${a.after} (${a.reason})`]));
}

async function poll() {
  try {
    const [daemon, tiers, names, alerts, health, recovery, crashes, governor] =
      await Promise.all(["daemon", "tiers", "history/metrics", "alerts", "health", "recovery",
                         "recovery/history?count=15", "governor"].map(api));
    $("#daemon").textContent = `taucg ${daemon.version} · pid ${daemon.pid} · up ` +
      `${Math.round(daemon.uptime_seconds)} s · workers ${daemon.workers.join(", ")}`;
    drawTiers(tiers);
    drawMetricList(names);
    if (chosen !== null) {
      drawChart(await api("history?metric=" + encodeURIComponent(chosen)));
    }
    drawHealth(health);
    drawAlerts(alerts);
    drawRecovery(recovery, crashes);
    drawGovernor(governor);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    $("#updated").className = "";
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (err) {
    $("#updated").textContent = "cannot reach the daemon: " + err.message;
    $("#updated").className = "bad";
  }
}

$("#metric").addEventListener("change", (e) => { chosen = e.target.value; poll(); });
poll();
setInterval(poll, POLL_MS);
