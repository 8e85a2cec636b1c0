// The dashboard's page, script and style, compiled into the binary so nothing is fetched from elsewhere.

/// The dashboard's assets. The page loads only these and its own routes (relative paths), so it
/// works on a LAN without internet access and leaks nothing to a third party.
enum DashboardAssets {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LANCompute dashboard</title>
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js"></script>
</head>
<body>
<header><h1>LANCompute · <span id="pipeline">…</span></h1><span class="origin">from <span id="origin">…</span></span><span id="status" class="down">connecting</span></header>
<main>
<section id="graph-panel"><h2>Pipeline</h2><div id="graph"></div></section>
<section id="stages-panel"><h2>Stages</h2>
<p class="legend"><span><i style="background:var(--rate)"></i>completions/s</span><span><i style="background:var(--p50)"></i>p50 ms</span><span><i style="background:var(--p99)"></i>p99 ms</span><span>plots: the last 5 minutes</span></p>
<table><thead><tr><th>stage</th><th>rate/s</th><th>received</th><th>completed</th><th>queued</th><th>in flight</th><th>failed</th><th>retried</th><th>dead letters</th><th>p50 / p99 ms</th><th>backpressure</th><th>throughput · latency</th></tr></thead>
<tbody id="stages-body"></tbody></table></section>
<section id="nodes-panel"><h2>Nodes</h2>
<table><thead><tr><th>node</th><th>host</th><th>arch · OS</th><th>cores</th><th>memory</th><th>GPU</th><th>stages</th><th>state</th><th>workers</th><th>in flight (load)</th><th>completed</th><th>heartbeat age</th></tr></thead>
<tbody id="nodes-body"></tbody></table></section>
<div class="columns">
<section id="events-panel"><h2>Events</h2><ul id="events-list"></ul></section>
<section id="dead-letters-panel"><h2>Dead letters (<span id="dead-letter-count">0</span>)</h2>
<table><thead><tr><th>time</th><th>stage</th><th>item</th><th>attempts</th><th>reason</th></tr></thead><tbody id="dead-letters-body"></tbody></table></section>
</div>
</main>
</body>
</html>
"""#

    static let script = #"""
// LANCompute dashboard: draws the state the server streams (Server-Sent Events on /events).
"use strict";
(function () {
  const HISTORY_SECONDS = 300;
  // A namespace name, not an address: nothing is fetched from it.
  const SVG_NAMESPACE = "http://www.w3.org/2000/svg";
  const state = { graph: null, snapshots: [], events: [], deadLetters: [], nodeStages: {}, backpressure: {}, connected: false };
  const $ = (id) => document.getElementById(id);
  const text = (value) => document.createTextNode(String(value));
  const token = new URLSearchParams(location.search).get("token");
  const withToken = (path) => token ? path + "?token=" + encodeURIComponent(token) : path;

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    for (const child of children || []) node.appendChild(typeof child === "object" ? child : text(child));
    return node;
  }
  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG_NAMESPACE, tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    return node;
  }
  function number(value, digits) {
    if (value === undefined || value === null) return "–";
    if (digits !== undefined) return Number(value).toFixed(digits);
    return Number(value).toLocaleString("en-US");
  }
  function bytes(value) {
    const n = Number(value);
    if (!isFinite(n) || n <= 0) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(v < 10 ? 1 : 0) + " " + units[i];
  }
  function time(ts) {
    return new Date(ts * 1000).toLocaleTimeString("en-GB", { hour12: false });
  }
  const latest = () => state.snapshots[state.snapshots.length - 1];

  // The pipeline graph: the server's SVG, with this page writing the live figures into it.
  function drawGraph() {
    const holder = $("graph");
    if (!state.graph) {
      holder.textContent = "The topology is not known yet (it is asked for with mmi.topology).";
      return;
    }
    holder.innerHTML = state.graph.svg;
    $("pipeline").textContent = state.graph.pipeline;
    fillGraph();
  }
  function fillGraph() {
    const snapshot = latest();
    if (!state.graph || !snapshot) return;
    state.graph.stages.forEach((name, index) => {
      const stage = snapshot.stages.find((s) => s.name === name);
      if (!stage) return;
      const set = (field, value) => { const node = $("stage-" + index + "-" + field); if (node) node.textContent = value; };
      set("rate", number(stage.rate, 1));
      set("queued", number(stage.queued));
      set("in_flight", number(stage.in_flight));
      set("failed", number(stage.failed));
      set("dead_lettered", number(stage.dead_lettered));
      const pressed = state.backpressure[name] === true;
      set("backpressure", pressed ? " · backpressure" : "");
      const group = $("stage-" + index);
      if (group) {
        group.classList.toggle("pressed", pressed);
        group.classList.toggle("failing", stage.failed > 0 || stage.dead_lettered > 0);
        group.classList.toggle("busy", stage.in_flight > 0);
      }
    });
  }

  // A small line plot of one or more series over the last HISTORY_SECONDS.
  function plot(series, colors, now) {
    const width = 220, height = 48;
    const svg = svgElement("svg", { class: "plot", viewBox: "0 0 " + width + " " + height, width: width, height: height });
    let max = 0;
    for (const points of series) for (const p of points) max = Math.max(max, p[1]);
    if (max <= 0) max = 1;
    svg.appendChild(svgElement("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
    series.forEach((points, i) => {
      if (points.length === 0) return;
      const coordinates = points.map((p) => {
        const x = width - ((now - p[0]) / HISTORY_SECONDS) * width;
        const y = height - 2 - (p[1] / max) * (height - 6);
        return Math.max(0, x).toFixed(1) + "," + y.toFixed(1);
      });
      svg.appendChild(svgElement("polyline", { points: coordinates.join(" "), stroke: colors[i], class: "series" }));
    });
    const label = svgElement("text", { x: 2, y: 10, class: "plot-max" });
    label.textContent = "max " + number(max, max < 10 ? 1 : 0);
    svg.appendChild(label);
    return svg;
  }

  function drawStages() {
    const snapshot = latest();
    const body = $("stages-body");
    body.replaceChildren();
    if (!snapshot) return;
    const now = snapshot.ts;
    const recent = state.snapshots.filter((s) => now - s.ts <= HISTORY_SECONDS);
    for (const stage of snapshot.stages) {
      const history = recent.map((s) => [s.ts, s.stages.find((t) => t.name === stage.name)]).filter((p) => p[1]);
      const rates = history.map((p) => [p[0], p[1].rate]);
      const p50 = history.map((p) => [p[0], p[1].latency_ms.p50]);
      const p99 = history.map((p) => [p[0], p[1].latency_ms.p99]);
      const row = element("tr", { "data-stage": stage.name }, [
        element("th", {}, [stage.name]),
        element("td", { class: "rate" }, [number(stage.rate, 1)]),
        element("td", { class: "received" }, [number(stage.received)]),
        element("td", { class: "completed" }, [number(stage.completed)]),
        element("td", { class: "queued" }, [number(stage.queued)]),
        element("td", { class: "in-flight" }, [number(stage.in_flight)]),
        element("td", { class: "failed" }, [number(stage.failed)]),
        element("td", { class: "retried" }, [number(stage.retried)]),
        element("td", { class: "dead-lettered" }, [number(stage.dead_lettered)]),
        element("td", { class: "latency" }, [number(stage.latency_ms.p50, 1) + " / " + number(stage.latency_ms.p99, 1)]),
        element("td", { class: "backpressure" }, [state.backpressure[stage.name] ? "on" : "off"]),
        element("td", { class: "plots" }, [
          plot([rates], ["var(--rate)"], now),
          plot([p50, p99], ["var(--p50)", "var(--p99)"], now),
        ]),
      ]);
      body.appendChild(row);
    }
  }

  function drawNodes() {
    const snapshot = latest();
    const body = $("nodes-body");
    body.replaceChildren();
    if (!snapshot) return;
    for (const node of snapshot.nodes) {
      const c = node.capabilities || {};
      const gpu = c["gpu"] === "true" ? (c["gpu.model"] || "yes") + (Number(c["gpu.count"]) > 1 ? " ×" + c["gpu.count"] : "") : "none";
      const stages = (state.nodeStages[node.id] || []).join(", ") || "–";
      const load = node.workers > 0 ? (node.in_flight / node.workers).toFixed(2) : "–";
      body.appendChild(element("tr", { "data-node": node.id }, [
        element("th", {}, [node.id]),
        element("td", {}, [node.host]),
        element("td", {}, [(c.arch || "?") + " · " + (c.os || "?")]),
        element("td", {}, [c.cores || "–"]),
        element("td", {}, [bytes(c.memory)]),
        element("td", {}, [gpu]),
        element("td", {}, [stages]),
        element("td", { class: c["yielding"] === "true" ? "late" : "" }, [c["yielding"] === "true" ? "yielding to owner" : "serving"]),
        element("td", {}, [number(node.workers)]),
        element("td", {}, [number(node.in_flight) + " (" + load + "/worker" + (c["load.1"] ? ", load " + c["load.1"] : "") + ")"]),
        element("td", {}, [number(node.completed)]),
        element("td", { class: node.heartbeat_age_ms > 2 * ((state.graph && state.graph.heartbeat_ms) || 250) ? "late" : "" }, [number(node.heartbeat_age_ms) + " ms"]),
      ]));
    }
  }

  function describe(event) {
    // The capabilities a node announced are in the nodes panel; here they would only be noise.
    const skip = new Set(["topic", "type", "seq", "ts", "capabilities"]);
    return Object.entries(event).filter(([k]) => !skip.has(k))
      .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
  }
  function drawEvents() {
    const list = $("events-list");
    list.replaceChildren();
    for (const event of state.events.slice(-100).reverse()) {
      const kind = event.topic.replace(/^event\./, "");
      list.appendChild(element("li", { class: "event " + kind.replace(/\./g, "-") }, [
        element("time", {}, [time(event.ts)]), element("b", {}, [kind]), " " + describe(event),
      ]));
    }
    const letters = $("dead-letters-body");
    letters.replaceChildren();
    for (const letter of state.deadLetters.slice(-100).reverse()) {
      letters.appendChild(element("tr", {}, [
        element("td", {}, [time(letter.ts)]), element("td", {}, [letter.stage]), element("td", {}, [letter.item_id]),
        element("td", {}, [number(letter.attempts)]), element("td", {}, [letter.reason]),
      ]));
    }
    $("dead-letter-count").textContent = state.deadLetters.length;
  }

  function drawStatus() {
    const snapshot = latest();
    const status = $("status");
    // A broker that said it is stopping closes the stream: that is the end of the run, not a fault.
    const phase = state.stopping ? "stopped (" + state.stopping + ")" : state.connected ? "live" : "disconnected, reconnecting";
    status.textContent = phase +
      (snapshot ? " · snapshot " + snapshot.seq + " at " + time(snapshot.ts) : " · waiting for the first snapshot");
    status.className = state.stopping ? "stopped" : state.connected ? "live" : "down";
    if (snapshot && !state.graph) $("pipeline").textContent = snapshot.pipeline;
  }
  function drawAll() { drawGraph(); drawLive(); drawEvents(); }
  function drawLive() { fillGraph(); drawStages(); drawNodes(); drawStatus(); }

  function addEvent(event) {
    state.events.push(event);
    if (state.events.length > 500) state.events.shift();
    if (event.topic === "event.item.dead-lettered") state.deadLetters.push(event);
    if (event.topic === "event.broker.stopping") state.stopping = event.reason || "stopping";
    if (event.topic === "event.broker.started") state.stopping = null;
    if (event.topic === "event.stage.backpressure") state.backpressure[event.stage] = event.active;
    if (event.topic === "event.worker.ready") {
      const stages = state.nodeStages[event.node] || (state.nodeStages[event.node] = []);
      if (!stages.includes(event.stage)) { stages.push(event.stage); stages.sort(); }
    }
  }
  function addSnapshot(snapshot) {
    state.snapshots.push(snapshot);
    while (state.snapshots.length > 0 && snapshot.ts - state.snapshots[0].ts > HISTORY_SECONDS * 2) state.snapshots.shift();
  }

  function connect() {
    const source = new EventSource(withToken("/events"));
    source.addEventListener("state", (message) => {
      const initial = JSON.parse(message.data);
      state.graph = initial.graph;
      state.snapshots = [];
      state.events = [];
      state.deadLetters = [];
      state.backpressure = {};
      state.nodeStages = initial.node_stages || {};
      $("origin").textContent = initial.origin;
      initial.snapshots.forEach(addSnapshot);
      initial.events.forEach(addEvent);
      state.deadLetters = initial.dead_letters;
      state.connected = true;
      drawAll();
    });
    source.addEventListener("graph", (message) => { state.graph = JSON.parse(message.data); drawGraph(); });
    source.addEventListener("metrics", (message) => { addSnapshot(JSON.parse(message.data)); drawLive(); });
    source.addEventListener("event", (message) => { addEvent(JSON.parse(message.data)); drawEvents(); drawLive(); });
    source.onopen = () => { state.connected = true; drawStatus(); };
    source.onerror = () => {
      state.connected = false;
      // The server of a broker that said it is stopping went away with it: do not knock forever.
      // (A remote dashboard's stream outlives the broker, and keeps going when it comes back.)
      if (state.stopping) source.close();
      drawStatus();
    };
  }
  document.addEventListener("DOMContentLoaded", () => { drawAll(); connect(); });
})();
"""#

    static let style = #"""
:root { --bg: #f6f7f9; --panel: #fff; --ink: #1d2430; --muted: #6b7380; --line: #d9dde3;
  --rate: #2f6fdb; --p50: #2a9d62; --p99: #d9822b; --bad: #c8372d; --warn: #d9822b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; gap: 16px; align-items: baseline; padding: 12px 20px; background: var(--ink); color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header .origin { color: #aab3c0; }
#status { margin-left: auto; font-size: 13px; }
#status.live::before { content: "● "; color: #4cd07d; }
#status.down::before { content: "● "; color: var(--bad); }
#status.stopped::before { content: "■ "; color: #aab3c0; }
main { display: grid; grid-template-columns: 1fr; gap: 16px; padding: 16px 20px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; overflow-x: auto; }
section h2 { font-size: 15px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; vertical-align: middle; }
thead th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.failed, td.dead-lettered { color: var(--bad); }
td.late { color: var(--bad); font-weight: 600; }
svg.graph rect { fill: #eef3fb; stroke: #8aa4cf; stroke-width: 1.5; }
svg.graph .endpoint rect { fill: #f1f1f1; stroke: #b5b5b5; }
svg.graph .busy rect { stroke: var(--rate); stroke-width: 2.5; }
svg.graph .failing rect { fill: #fdf0ef; }
svg.graph .pressed rect { stroke: var(--warn); stroke-width: 3; stroke-dasharray: 6 3; }
svg.graph text { font-size: 12px; fill: var(--ink); }
svg.graph text.name { font-weight: 600; font-size: 13px; }
svg.graph .backpressure { fill: var(--warn); font-weight: 600; }
svg.graph .edge { fill: none; stroke: #8a93a0; stroke-width: 1.5; }
svg.graph .edge.chained { stroke: var(--rate); stroke-width: 2.5; }
svg.graph .chain { fill: none; stroke: var(--rate); stroke-dasharray: 6 4; stroke-width: 1.5; }
svg.graph .arrowhead { fill: #8a93a0; }
svg.plot { display: inline-block; margin-right: 8px; background: #fafbfc; border: 1px solid var(--line); }
svg.plot .series { fill: none; stroke-width: 1.5; }
svg.plot .axis { stroke: var(--line); }
svg.plot .plot-max { font-size: 9px; fill: var(--muted); }
.legend span { margin-right: 12px; font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
#events-list { list-style: none; margin: 0; padding: 0; max-height: 260px; overflow-y: auto; font: 12px/1.5 ui-monospace, Menlo, monospace; }
#events-list li { border-bottom: 1px solid #f0f1f3; padding: 2px 0; }
#events-list time { color: var(--muted); margin-right: 8px; }
#events-list .node-joined b { color: #2a9d62; }
#events-list .node-left b, #events-list .item-dead-lettered b, #events-list .worker-expired b { color: var(--bad); }
#events-list .stage-backpressure b { color: var(--warn); }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 1100px) { .columns { grid-template-columns: 1fr; } }
"""#
}
