// The taskq dashboard: reads api/state every two seconds and renders it. Every text comes
// from the fleet (task arguments, tracebacks, queue names), so it is only ever set as text,
// never as HTML.
"use strict";

const REFRESH_MS = 2000;
const CONFIRM_MS = 4000;
let last = null;
const openTracebacks = new Set();
let pendingConfirm = null; // {key, until}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function ago(seconds, now) {
  if (seconds === null || seconds === undefined) return "—";
  const d = Math.max(0, now - seconds);
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  return `${Math.round(d / 3600)} h ago`;
}

function clock(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toLocaleTimeString();
}

function short(text, max) {
  if (text === null || text === undefined) return "";
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function stateBadge(state) {
  return el("span", { class: `state state-${state.toLowerCase()}` }, state);
}

function toast(text, isError) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = isError ? "error" : "ok";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

async function act(path, what) {
  try {
    const response = await fetch(path, { method: "POST", headers: { "x-taskq-action": "1" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
    toast(what(body), false);
  } catch (e) {
    toast(`failed: ${e.message}`, true);
  }
  refresh();
}

// A button that acts at once, or (confirm) asks for a second click first.
function actionButton(action, label, key, onConfirmed, confirm) {
  const waiting = pendingConfirm && pendingConfirm.key === key && pendingConfirm.until > Date.now();
  const text = confirm && waiting ? `Really ${label.toLowerCase()}?` : label;
  return el("button", {
    class: confirm && waiting ? "small danger" : "small",
    "data-action": action,
    onclick: () => {
      if (confirm && !waiting) {
        pendingConfirm = { key, until: Date.now() + CONFIRM_MS };
        render();
        return;
      }
      pendingConfirm = null;
      onConfirmed();
    },
  }, text);
}

function taskLink(id) {
  if (!id) return "—";
  return el("a", { href: `#task-${id}`, class: "mono", onclick: (e) => { e.preventDefault(); showTask(id); } }, short(id, 13));
}

function fill(sectionId, rows) {
  const section = document.getElementById(sectionId);
  section.querySelector("tbody").replaceChildren(...rows);
  section.querySelector(".empty").hidden = rows.length > 0;
}

function sparkline(values) {
  const width = 160, height = 28;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  if (values.length < 2) return svg;
  const max = Math.max(1, ...values);
  const points = values.map((v, i) =>
    `${(i / (values.length - 1)) * (width - 2) + 1},${height - 2 - (v / max) * (height - 4)}`);
  const line = document.createElementNS(svgNs, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  const title = document.createElementNS(svgNs, "title");
  title.textContent = `max ${max} waiting`;
  svg.append(title);
  return svg;
}

function renderWorkers(state) {
  const rows = state.workers.map((w) => el("tr", { "data-worker": w.name, class: w.online ? "" : "offline" },
    el("td", {}, el("span", { class: w.online ? "dot up" : "dot down", title: w.online ? "online" : "offline" })),
    el("td", { class: "mono" }, w.name),
    el("td", {}, w.software || "—"),
    el("td", {}, (w.queues || []).join(", ") || "—"),
    el("td", { class: "num" }, w.concurrency ?? "—"),
    el("td", { class: "num" }, w.running ?? "—"),
    el("td", { class: "num" }, w.processed ?? "—"),
    el("td", {}, ago(w.last_heartbeat, state.now))));
  fill("workers", rows);
  document.getElementById("count-workers").textContent = state.workers.filter((w) => w.online).length;
}

function renderQueues(state) {
  const rows = state.queues.map((q) => el("tr", { "data-queue": q.name },
    el("td", { class: "mono" }, q.name, q.paused ? el("span", { class: "badge" }, "paused") : null),
    el("td", { class: "num" }, q.waiting),
    el("td", { class: "num" }, q.unacked),
    el("td", { class: "num" }, q.scheduled),
    el("td", { class: "num" }, q.dead),
    el("td", {}, sparkline(q.history)),
    el("td", { class: "actions" },
      q.paused
        ? actionButton("resume", "Resume", `resume:${q.name}`, () => act(`api/queues/${encodeURIComponent(q.name)}/resume`, () => `resumed ${q.name}`))
        : actionButton("pause", "Pause", `pause:${q.name}`, () => act(`api/queues/${encodeURIComponent(q.name)}/pause`, () => `paused ${q.name}`)),
      actionButton("purge", "Purge", `purge:${q.name}`, () => act(`api/queues/${encodeURIComponent(q.name)}/purge`, (b) => `purged ${b.purged} from ${q.name}`), true))));
  fill("queues", rows);
  document.getElementById("count-queues").textContent = state.queues.length;
}

function revokeButton(id) {
  return actionButton("revoke", "Revoke", `revoke:${id}`,
    () => act(`api/tasks/${encodeURIComponent(id)}/revoke?terminate=true`, () => `revoked ${id}`), true);
}

function renderTasks(state) {
  const finished = new Set(["SUCCESS", "FAILURE", "REVOKED", "REJECTED"]);
  const rows = state.tasks.map((t) => el("tr", { "data-task": t.id, "data-state": t.state },
    el("td", { class: "mono" }, t.name || "?"),
    el("td", {}, taskLink(t.id)),
    el("td", {}, stateBadge(t.state)),
    el("td", { class: "mono args" }, short([t.args, t.kwargs && t.kwargs !== "{}" ? t.kwargs : null].filter(Boolean).join(" "), 60)),
    el("td", { class: "mono" }, t.worker || "—"),
    el("td", {}, clock(t.received || t.updated)),
    el("td", { class: "num" }, t.runtime === null || t.runtime === undefined ? "—" : `${t.runtime.toFixed(3)} s`),
    el("td", { class: "actions" }, finished.has(t.state) ? null : revokeButton(t.id))));
  fill("tasks", rows);
}

function renderFailed(state) {
  const rows = state.failed.map((t) => {
    const details = el("details", { open: openTracebacks.has(t.id) },
      el("summary", {}, t.exception || "failed"),
      el("pre", { class: "traceback" }, t.traceback || "(no traceback sent)"));
    details.addEventListener("toggle", () => {
      if (details.open) openTracebacks.add(t.id); else openTracebacks.delete(t.id);
    });
    return el("tr", { "data-task": t.id },
      el("td", { class: "mono" }, t.name || "?"),
      el("td", {}, taskLink(t.id)),
      el("td", { class: "exception" }, details),
      el("td", { class: "mono args" }, short(t.args || "", 60)),
      el("td", { class: "mono" }, t.worker || "—"),
      el("td", {}, clock(t.updated)),
      el("td", { class: "actions" }, actionButton("retry", "Retry", `retry:${t.id}`,
        () => act(`api/tasks/${encodeURIComponent(t.id)}/retry`, (b) => `retried as ${b.id}`))));
  });
  fill("failed", rows);
  document.getElementById("count-failed").textContent = state.failed.length;
}

function renderScheduled(state) {
  const rows = state.scheduled.map((s) => el("tr", { "data-task": s.id || "" },
    el("td", {}, s.eta ? new Date(s.eta).toLocaleString() : "—"),
    el("td", { class: "mono" }, s.name || "?"),
    el("td", {}, taskLink(s.id)),
    el("td", { class: "mono args" }, short(s.args || "", 60)),
    el("td", { class: "mono" }, s.worker),
    el("td", { class: "actions" }, s.id ? revokeButton(s.id) : null)));
  fill("scheduled", rows);
  document.getElementById("count-scheduled").textContent = state.scheduled.length;
}

function renderDeadLetters(state) {
  const rows = state.dead_letters.map((d) => el("tr", { "data-task": d.task_id || "" },
    el("td", {}, clock(d.time)),
    el("td", { class: "mono" }, d.name || "(not a task message)"),
    el("td", { class: "mono" }, d.task_id ? short(d.task_id, 13) : "—"),
    el("td", { class: "mono" }, d.queue || "—"),
    el("td", { class: "reason" }, d.reason),
    el("td", { class: "mono args" }, short(d.args ?? d.payload ?? "", 60)),
    el("td", { class: "actions" }, d.task_id && d.queue
      ? actionButton("requeue", "Requeue", `requeue:${d.task_id}`,
          () => act(`api/dead-letters/${encodeURIComponent(d.task_id)}/requeue`, () => `requeued ${d.task_id}`))
      : null)));
  fill("dead-letters", rows);
  document.getElementById("count-dead").textContent = state.dead_letters.length;
}

function render() {
  if (!last) return;
  const state = last;
  document.getElementById("broker").textContent = state.broker;
  document.getElementById("rates").textContent =
    `${state.succeeded_per_second.toFixed(1)}/s done · ${state.failed_per_second.toFixed(1)}/s failed`;
  renderWorkers(state);
  renderQueues(state);
  renderTasks(state);
  renderFailed(state);
  renderScheduled(state);
  renderDeadLetters(state);
}

async function refresh() {
  const live = document.getElementById("live");
  try {
    const response = await fetch("api/state", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    last = body;
    render();
    live.textContent = `live · ${new Date().toLocaleTimeString()}`;
    live.className = "live up";
  } catch (e) {
    live.textContent = `cannot read the fleet: ${e.message}`;
    live.className = "live down";
  }
}

async function showTask(id) {
  const dialog = document.getElementById("task-detail");
  const fields = document.getElementById("detail-fields");
  document.getElementById("detail-title").textContent = id;
  fields.replaceChildren(el("dd", {}, "loading…"));
  if (!dialog.open) dialog.showModal();
  try {
    const response = await fetch(`api/tasks/${encodeURIComponent(id)}`, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    const seen = body.seen || {};
    const record = body.record || {};
    const show = (value) => value === undefined || value === null ? null
      : typeof value === "string" ? value : JSON.stringify(value, null, 2);
    const rows = [
      ["Task", seen.name || record.name],
      ["State", record.status || seen.state],
      ["Arguments", show(record.args) || seen.args],
      ["Keyword arguments", show(record.kwargs) || seen.kwargs],
      ["Worker", seen.worker || record.worker],
      ["Queue", seen.queue || record.queue],
      ["Retries", show(seen.retries ?? record.retries)],
      ["Result", record.status === "SUCCESS" ? show(record.result) : seen.result],
      ["Exception", record.status === "FAILURE" ? show(record.result) : seen.exception],
      ["Traceback", record.traceback || seen.traceback],
      ["Done", record.date_done],
      ["Run time", seen.runtime ? `${seen.runtime.toFixed(3)} s` : null],
    ].filter(([, value]) => value !== null && value !== undefined && value !== "");
    fields.replaceChildren(...rows.flatMap(([name, value]) =>
      [el("dt", {}, name), el("dd", {}, el("pre", {}, String(value)))]));
  } catch (e) {
    fields.replaceChildren(el("dd", { class: "error" }, e.message));
  }
}

document.querySelector('[data-action="requeue-all"]').addEventListener("click", () =>
  act("api/dead-letters/requeue", (b) => `requeued ${b.requeued} dead letters`));

refresh();
setInterval(refresh, REFRESH_MS);
