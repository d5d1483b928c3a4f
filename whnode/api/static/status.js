// whnode status page: renders /v1/node and /v1/node/history; no external assets.
"use strict";
(function () {
  var REFRESH_MS = 10000;
  var PATHS = ["hot", "store", "owner", "fill", "stale"];
  var SVG = "http://www.w3.org/2000/svg";

  function byId(id) { return document.getElementById(id); }
  function num(value) { var n = Number(value); return isFinite(n) ? n : 0; }
  function obj(value) { return value && typeof value === "object" ? value : {}; }
  function fmtInt(value) { return Math.round(num(value)).toLocaleString("en-US"); }
  function fmtPct(ratio) { return ratio === null ? "–" : (100 * ratio).toFixed(1) + "%"; }
  function fmtBytes(value) {
    var n = num(value), units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + units[i];
  }
  function fmtDuration(seconds) {
    var s = Math.floor(num(seconds)), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60);
    if (d > 0) { return d + "d " + h + "h"; }
    if (h > 0) { return h + "h " + m + "m"; }
    return m + "m " + (s % 60) + "s";
  }
  function fmtTime(ms) {
    var date = new Date(num(ms));
    return date.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function setValue(id, text, raw) {
    var el = byId(id);
    if (!el) { return; }
    el.textContent = text;
    if (raw !== undefined) { el.setAttribute("data-value", String(raw)); }
  }
  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }
  function fillBody(table, rows) {
    var body = byId(table).tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    rows.forEach(function (make) { var tr = document.createElement("tr"); make(tr); body.appendChild(tr); });
  }

  function renderNode(node) {
    node = obj(node);
    var service = obj(node.service), hot = obj(node.hot_cache), store = obj(node.store);
    var peers = Array.isArray(node.peers) ? node.peers : [];
    setValue("node-id", String(node.node_id || "–"));
    setValue("address", String(node.address || "–"));
    setValue("uptime", fmtDuration(node.uptime_seconds));
    setValue("mode", node.routing_only ? "routing only (seed)" : "full node");
    setValue("peers", fmtInt(peers.length), peers.length);
    // requests = answers (by path) + errors (by kind) + those still in flight
    var requests = num(service.requests);
    var answers = obj(service.answers_by_path), errors = sum(obj(service.errors_by_kind));
    var answered = sum(answers), inFlight = Math.max(0, requests - answered - errors);
    setValue("requests", fmtInt(requests), requests);
    setValue("requests-sub", fmtInt(answered) + " answered, " + fmtInt(errors) + " errors" +
      (inFlight > 0 ? ", " + fmtInt(inFlight) + " in flight" : ""));
    var lookups = num(hot.hits) + num(hot.misses);
    var hitRate = lookups > 0 ? num(hot.hits) / lookups : null;
    setValue("hit-rate", fmtPct(hitRate), hitRate === null ? "" : hitRate.toFixed(4));
    setValue("hit-rate-sub", "of " + fmtInt(lookups) + " cache lookups (a request may make several): " +
      fmtInt(hot.hits) + " hits, " + fmtInt(hot.misses) + " misses");
    var saved = num(service.upstream_calls_saved), calls = num(service.upstream_calls);
    setValue("calls-saved", fmtInt(saved), saved);
    setValue("calls-sub", "upstream calls made here: " + fmtInt(calls));
    setValue("store-size", fmtBytes(store.bytes), num(store.bytes));
    setValue("store-sub", fmtInt(store.records) + " snapshots of " + fmtInt(store.dispensaries) + " dispensaries");
    setValue("hot-size", fmtBytes(hot.bytes), num(hot.bytes));
    var queries = obj(node.queries);
    setValue("watched", fmtInt(queries.watched), num(queries.watched));
    setValue("watched-sub", fmtInt(queries.streams_open) + " change streams open; " +
      fmtInt(queries.search_index_dispensaries) + " menus searchable");
    setValue("hot-sub", "records: " + fmtInt(hot.entries) + ", budget " + fmtBytes(hot.max_bytes));
    renderPaths(answers, errors);
    var fills = Array.isArray(service.recent_fills) ? service.recent_fills.slice(0, 12) : [];
    fillBody("fills", fills.map(function (fill) {
      fill = obj(fill);
      return function (tr) {
        var code = document.createElement("code");
        code.textContent = String(fill.dispensary_id || "");
        cell(tr, "").appendChild(code);
        cell(tr, fmtTime(fill.fetched_at_ms));
        cell(tr, fmtInt(fill.product_count), "num");
        cell(tr, (num(fill.duration_ms) / 1000).toFixed(2) + " s", "num");
        cell(tr, fill.changed ? "yes" : "no");
      };
    }));
    fillBody("peer-table", peers.slice(0, 20).map(function (peer) {
      peer = obj(peer);
      return function (tr) {
        var code = document.createElement("code");
        code.textContent = String(peer.node_id || "").slice(0, 16);
        cell(tr, "").appendChild(code);
        cell(tr, String(peer.host || "") + ":" + String(peer.port || ""));
      };
    }));
  }

  function sum(counts) {
    var total = 0;
    Object.keys(counts).forEach(function (key) { total += num(counts[key]); });
    return total;
  }

  function renderPaths(answers, errors) {
    var box = byId("paths");
    while (box.firstChild) { box.removeChild(box.firstChild); }
    var counts = {};
    PATHS.forEach(function (path) { counts[path] = num(answers[path]); });
    counts.error = errors;
    var total = 0;
    PATHS.concat(["error"]).forEach(function (path) { total += counts[path]; });
    PATHS.concat(["error"]).forEach(function (path) {
      var count = counts[path];
      if (total === 0 || count === 0) { return; }
      var span = document.createElement("span");
      span.className = "path-" + path;
      span.style.width = (100 * count / total).toFixed(2) + "%";
      span.textContent = path + " " + fmtInt(count);
      span.setAttribute("data-path", path);
      span.setAttribute("data-value", String(count));
      box.appendChild(span);
    });
    if (total === 0) {
      var empty = document.createElement("span");
      empty.style.color = "#6b756e";
      empty.textContent = "no answers yet";
      box.appendChild(empty);
    }
  }

  // Per-interval series from cumulative samples: [time, value] pairs.
  function rate(samples, field, perSeconds) {
    var points = [];
    for (var i = 1; i < samples.length; i += 1) {
      var dt = num(samples[i].time) - num(samples[i - 1].time);
      if (dt <= 0) { continue; }
      var dv = Math.max(0, num(samples[i][field]) - num(samples[i - 1][field]));
      points.push([num(samples[i].time), dv * perSeconds / dt]);
    }
    return points;
  }
  function hitRates(samples) {
    var points = [];
    for (var i = 1; i < samples.length; i += 1) {
      var hits = num(samples[i].hot_hits) - num(samples[i - 1].hot_hits);
      var misses = num(samples[i].hot_misses) - num(samples[i - 1].hot_misses);
      if (hits + misses > 0) { points.push([num(samples[i].time), 100 * hits / (hits + misses)]); }
    }
    return points;
  }
  function level(samples, field) {
    return samples.map(function (s) { return [num(s.time), num(s[field])]; });
  }

  function svgEl(name, attrs, parent) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { el.setAttribute(key, String(attrs[key])); });
    parent.appendChild(el);
    return el;
  }
  function drawChart(id, seriesList, options) {
    var svg = byId(id), W = 320, H = 90, left = 30, right = 6, top = 6, bottom = 14;
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var all = [];
    seriesList.forEach(function (s) { all = all.concat(s.points); });
    var now = Date.now() / 1000, tMin = now - 3600, tMax = now;
    if (all.length > 0) {
      tMax = Math.max(tMax, all[all.length - 1][0]);
      tMin = Math.min(tMin, all[0][0]);
    }
    var vMax = options.max || 0;
    all.forEach(function (p) { vMax = Math.max(vMax, p[1]); });
    if (vMax <= 0) { vMax = 1; }
    function x(t) { return left + (W - left - right) * (t - tMin) / Math.max(1, tMax - tMin); }
    function y(v) { return top + (H - top - bottom) * (1 - v / vMax); }
    [0, 0.5, 1].forEach(function (f) {
      svgEl("line", { x1: left, x2: W - right, y1: y(vMax * f), y2: y(vMax * f), "class": "grid" }, svg);
      var label = svgEl("text", { x: left - 3, y: y(vMax * f) + 3, "text-anchor": "end" }, svg);
      label.textContent = options.format(vMax * f);
    });
    var tl = svgEl("text", { x: left, y: H - 2 }, svg); tl.textContent = "−60 min";
    var tr = svgEl("text", { x: W - right, y: H - 2, "text-anchor": "end" }, svg); tr.textContent = "now";
    if (all.length === 0) {
      var t = svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg);
      t.textContent = "collecting samples…";
      return;
    }
    seriesList.forEach(function (s, index) {
      if (s.points.length === 0) { return; }
      var coords = s.points.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); });
      if (index === 0 && s.points.length > 1) {
        svgEl("polygon", {
          points: x(s.points[0][0]).toFixed(1) + "," + y(0) + " " + coords.join(" ") + " " +
            x(s.points[s.points.length - 1][0]).toFixed(1) + "," + y(0),
          "class": "area"
        }, svg);
      }
      svgEl("polyline", { points: coords.join(" "), "class": index === 0 ? "line" : "line second",
        "data-points": s.points.length }, svg);
    });
  }
  function fmtAxis(v) { return v >= 1000 ? (v / 1000).toFixed(1) + "k" : (v >= 10 ? v.toFixed(0) : v.toFixed(1)); }

  function renderCharts(samples) {
    samples = Array.isArray(samples) ? samples.map(obj) : [];
    var cutoff = Date.now() / 1000 - 3600;
    samples = samples.filter(function (s) { return num(s.time) >= cutoff; });
    drawChart("chart-requests", [{ points: rate(samples, "requests", 60) }], { format: fmtAxis });
    drawChart("chart-hits", [{ points: hitRates(samples) }], { max: 100, format: function (v) { return v.toFixed(0) + "%"; } });
    drawChart("chart-upstream", [
      { points: rate(samples, "upstream_calls_saved", 60) },
      { points: rate(samples, "upstream_calls", 60) }
    ], { format: fmtAxis });
    drawChart("chart-peers", [{ points: level(samples, "peers") }], { format: fmtAxis });
  }

  function setConnection(ok, text) {
    var badge = byId("connection");
    badge.textContent = text;
    badge.className = "badge " + (ok ? "ok" : "bad");
  }
  function render(data) {
    data = obj(data);
    renderNode(data.node);
    renderCharts(data.samples);
    setValue("updated", new Date().toISOString().slice(11, 19) + "Z");
  }

  function getJson(url) {
    return fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }
  function refresh() {
    Promise.all([getJson("/v1/node"), getJson("/v1/node/history")]).then(function (results) {
      render({ node: results[0], samples: obj(results[1]).samples });
      setConnection(true, "live");
    }).catch(function () { setConnection(false, "unreachable"); });
  }

  var initial = {};
  try { initial = JSON.parse(byId("initial-data").textContent || "{}"); } catch (e) { initial = {}; }
  render(initial);
  setConnection(true, "live");
  if (typeof window.fetch === "function") { window.setInterval(refresh, REFRESH_MS); }
})();
