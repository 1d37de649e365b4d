// The interactive parts of a search's report.html: canvas plots with a label under the
// pointer, and the leaderboard as a sortable, paged table. Everything comes from the
// JSON block #data that dpcdsl.search.report writes; nothing is fetched.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const C = D.cols;
  const N = C.trial.length;
  const STATES = D.states;
  const PAGE = 100;
  const byTrial = new Map();
  for (let i = 0; i < N; i++) byTrial.set(C.trial[i], i);

  // ------------------------------------------------------------------ numbers
  function si(v) {
    if (v === null || v === undefined) return "";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return String(v);
  }
  function fixed(v, d) { return v === null || v === undefined ? "" : v.toFixed(d); }
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) out.push(t);
    return out;
  }

  // ------------------------------------------------------------------ plots
  // plot(id, series, opts): series = [{xs, ys, trials, color, line, dots, label}]
  function plot(id, series, opts) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    const W = canvas.clientWidth || 520, H = canvas.clientHeight || 320;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = W * ratio; canvas.height = H * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    const M = { l: 64, r: 14, t: 12, b: 40 };
    let xs = [], ys = [];
    for (const s of series) { xs = xs.concat(s.xs); ys = ys.concat(s.ys); }
    const fin = a => a.filter(v => v !== null && isFinite(v));
    xs = fin(xs); ys = fin(ys);
    if (!xs.length) {
      g.fillStyle = "#666"; g.font = "13px sans-serif";
      g.fillText("no finished trial yet", M.l, H / 2);
      return;
    }
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (opts.ymin !== undefined) y0 = Math.min(y0, opts.ymin);  // an axis that starts there
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    const px = x => M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r);
    const py = y => H - M.b - (y - y0) / (y1 - y0) * (H - M.t - M.b);
    g.strokeStyle = "#ddd"; g.fillStyle = "#444"; g.font = "11px sans-serif";
    for (const t of ticks(x0, x1, 5)) {
      g.beginPath(); g.moveTo(px(t), M.t); g.lineTo(px(t), H - M.b); g.stroke();
      g.fillText(opts.xfmt ? opts.xfmt(t) : String(+t.toPrecision(6)), px(t) - 12, H - M.b + 14);
    }
    g.textAlign = "right";
    for (const t of ticks(y0, y1, 5)) {
      g.beginPath(); g.moveTo(M.l, py(t)); g.lineTo(W - M.r, py(t)); g.stroke();
      g.fillText(String(+t.toPrecision(6)), M.l - 5, py(t) + 4);
    }
    g.textAlign = "left";
    g.fillStyle = "#222"; g.font = "12px sans-serif";
    g.fillText(opts.xlabel, W / 2 - 40, H - 6);
    g.save(); g.translate(12, H / 2 + 30); g.rotate(-Math.PI / 2);
    g.fillText(opts.ylabel, 0, 0); g.restore();
    const hits = [];
    for (const s of series) {
      g.strokeStyle = s.color; g.fillStyle = s.color;
      if (s.line) {
        g.setLineDash(s.dash || []);
        g.beginPath();
        let started = false;
        for (let i = 0; i < s.xs.length; i++) {
          if (s.ys[i] === null) continue;
          const X = px(s.xs[i]), Y = py(s.ys[i]);
          if (!started) { g.moveTo(X, Y); started = true; }
          else if (s.line === "step") { g.lineTo(X, py(s.ys[i - 1] ?? s.ys[i])); g.lineTo(X, Y); }
          else g.lineTo(X, Y);
        }
        g.lineWidth = s.width || 1.5; g.stroke(); g.lineWidth = 1;
        g.setLineDash([]);
      }
      if (s.dots) {
        g.globalAlpha = s.alpha || 1;
        for (let i = 0; i < s.xs.length; i++) {
          if (s.ys[i] === null) continue;
          const X = px(s.xs[i]), Y = py(s.ys[i]);
          g.beginPath(); g.arc(X, Y, s.dots / 2, 0, 2 * Math.PI); g.fill();
          if (s.trials) hits.push([X, Y, s.trials[i], s.xs[i], s.ys[i]]);
        }
        g.globalAlpha = 1;
      }
      if (s.label && s.trials) {
        g.font = "10px sans-serif";
        for (let i = 0; i < s.xs.length; i++) {
          g.fillText("#" + s.trials[i], px(s.xs[i]) + 4, py(s.ys[i]) - 4);
        }
      }
    }
    const tip = document.getElementById("tip");
    canvas.onmousemove = ev => {
      const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      let best = null, bd = 64;
      for (const h of hits) {
        const d = (h[0] - mx) * (h[0] - mx) + (h[1] - my) * (h[1] - my);
        if (d < bd) { bd = d; best = h; }
      }
      canvas._hit = best;
      if (!best) { tip.style.display = "none"; return; }
      tip.textContent = "trial " + best[2] + ": " + opts.ylabel + " " + (+best[4].toFixed(2)) +
        ", " + opts.xlabel + " " + (opts.xfmt ? opts.xfmt(best[3]) : +best[3].toFixed(3));
      tip.style.display = "block";
      tip.style.left = (ev.pageX + 12) + "px"; tip.style.top = (ev.pageY + 12) + "px";
    };
    canvas.onmouseleave = () => { tip.style.display = "none"; };
    canvas.onclick = () => { if (canvas._hit) showTrial(canvas._hit[2]); };
  }

  function progressPlots() {
    // finished trials in the order they finished: best so far against their count and
    // against search time
    const idx = [];
    for (let i = 0; i < N; i++) if (C.miou[i] !== null) idx.push(i);
    idx.sort((a, b) => C.hours[a] - C.hours[b] || C.trial[a] - C.trial[b]);
    const count = [], hours = [], best = [], score = [], trials = [];
    let top = -Infinity;
    idx.forEach((i, k) => {
      top = Math.max(top, C.miou[i]);
      count.push(k + 1); hours.push(C.hours[i]); best.push(top);
      score.push(C.miou[i]); trials.push(C.trial[i]);
    });
    const s = (xs) => {
      const out = [
        { xs: xs, ys: score, trials: trials, color: "#2f6fad", dots: 7, alpha: 0.75 },
        { xs: xs, ys: best, color: "#c0392b", line: "step", width: 2 }];
      if (D.baseline && xs.length) {  // the baseline's mIOU on the same proxy, dashed
        out.push({ xs: [Math.min(...xs), Math.max(...xs)], ys: [D.baseline.miou, D.baseline.miou],
          color: "#1e8449", line: "line", dash: [6, 4], width: 2 });
      }
      return out;
    };
    plot("plot-trials", s(count), { xlabel: "finished trials", ylabel: "mIOU" });
    plot("plot-time", s(hours), { xlabel: "search hours (idle time left out)", ylabel: "mIOU" });
  }

  function paretoPlot(id, key, front, xlabel) {
    const xs = [], ys = [], trials = [];
    for (let i = 0; i < N; i++) {
      if (C.miou[i] === null || C[key][i] === null) continue;
      xs.push(C[key][i]); ys.push(C.miou[i]); trials.push(C.trial[i]);
    }
    const f = front.map(t => byTrial.get(t));
    plot(id, [
      { xs: xs, ys: ys, trials: trials, color: "#2f6fad", dots: 7, alpha: 0.7 },
      { xs: f.map(i => C[key][i]), ys: f.map(i => C.miou[i]), trials: front,
        color: "#c0392b", line: "line", dots: 9, label: true, width: 2 }],
      { xlabel: xlabel, ylabel: "mIOU", xfmt: si });
  }

  function hypervolumePlot() {
    // a multi-objective search's hypervolume against finished trials
    if (!D.hv) return;
    plot("plot-hv", [{ xs: D.hv.map(p => p[0]), ys: D.hv.map(p => p[1]), color: "#8e44ad",
      line: "step", width: 2 }],
      { xlabel: "finished trials", ylabel: "hypervolume", ymin: 0 });
  }

  function curvePlot() {
    const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    const series = D.curves.map((c, k) => ({
      xs: c.evals.map(e => e[0]), ys: c.evals.map(e => e[1]), trials: c.evals.map(() => c.trial),
      color: colors[k % colors.length], line: "line", dots: 6, width: 2 }));
    plot("plot-curves", series, { xlabel: "training step", ylabel: "mIOU" });
    const legend = document.getElementById("curves-legend");
    if (legend) legend.innerHTML = D.curves.map((c, k) =>
      '<span style="color:' + colors[k % colors.length] + '">&#9632;</span> trial ' + c.trial)
      .join(" &nbsp; ");
  }

  // ------------------------------------------------------------------ leaderboard
  const columns = [
    { key: "rank", title: "rank", get: i => i + 1, show: v => v },
    { key: "trial", title: "trial", get: i => C.trial[i], show: v => v },
    { key: "state", title: "state", get: i => C.state[i], show: v => STATES[v] },
    { key: "miou", title: "mIOU", get: i => C.miou[i], show: v => fixed(v, 2) },
    { key: "params", title: "params", get: i => C.params[i], show: si },
    { key: "madds", title: "MAdds", get: i => C.madds[i], show: si },
    { key: "wall_s", title: "train s", get: i => C.wall_s[i], show: v => fixed(v, 1) },
    { key: "dup", title: "same as", get: i => C.dup[i], show: v => v === null ? "" : "#" + v },
  ];
  if (C.latency_ms.some(v => v !== null)) {  // measured in this search
    columns.splice(6, 0, { key: "latency_ms", title: "latency ms", get: i => C.latency_ms[i],
      show: v => fixed(v, 3) });
  }
  for (let c = 0; c < D.classes.length; c++) {
    columns.push({ key: "iou" + c, title: D.classes[c],
      get: i => (C.iou[i][c] === undefined ? null : C.iou[i][c]), show: v => fixed(v, 1) });
  }
  let order = [...Array(N).keys()], sortKey = "rank", sortDir = 1, page = 0, open = null;

  function sortBy(key) {
    const col = columns.find(c => c.key === key);
    sortDir = sortKey === key ? -sortDir : (key === "rank" || key === "trial" ? 1 : -1);
    sortKey = key;
    order.sort((a, b) => {
      const va = col.get(a), vb = col.get(b);
      if (va === null && vb === null) return a - b;
      if (va === null) return 1;   // empty cells last, whichever the direction
      if (vb === null) return -1;
      return (va < vb ? -1 : va > vb ? 1 : a - b) * sortDir;
    });
    page = 0;
    render();
  }

  function detail(i) {
    const t = C.trial[i], text = D.cells[t];
    let html = text !== undefined ? "<pre>" + escapeHtml(text) + "</pre>" :
      "<p>The cell of trial " + t + " is kept in the study (user attribute <code>cell</code>)" +
      "; the page holds the text of the best " + Object.keys(D.cells).length + ".</p>";
    if (D.reasons[t]) html += "<p>" + escapeHtml(D.reasons[t]) + "</p>";
    if (document.getElementById("cell-" + t)) html += '<p><a href="#cell-' + t + '">its graph</a></p>';
    return html;
  }

  function render() {
    const head = document.querySelector("#board thead tr");
    head.innerHTML = columns.map(c => {
      const s = c.key === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none";
      return '<th data-key="' + c.key + '" aria-sort="' + s + '">' + escapeHtml(c.title) + "</th>";
    }).join("");
    head.querySelectorAll("th").forEach(th => { th.onclick = () => sortBy(th.dataset.key); });
    const rows = [];
    for (const i of order.slice(page * PAGE, (page + 1) * PAGE)) {
      rows.push('<tr class="row s-' + STATES[C.state[i]] + '" data-trial="' + C.trial[i] + '">' +
        columns.map(c => "<td>" + c.show(c.get(i)) + "</td>").join("") + "</tr>");
      if (open === C.trial[i]) {
        rows.push('<tr class="detail"><td colspan="' + columns.length + '">' + detail(i) + "</td></tr>");
      }
    }
    const body = document.querySelector("#board tbody");
    body.innerHTML = rows.join("");
    body.querySelectorAll("tr.row").forEach(tr => {
      tr.onclick = () => { const t = +tr.dataset.trial; open = open === t ? null : t; render(); };
    });
    const pages = Math.max(1, Math.ceil(N / PAGE));
    document.getElementById("board-page").textContent =
      "rows " + (N ? page * PAGE + 1 : 0) + "-" + Math.min(N, (page + 1) * PAGE) + " of " + N +
      " (page " + (page + 1) + " of " + pages + ")";
    document.getElementById("board-prev").disabled = page === 0;
    document.getElementById("board-next").disabled = page >= pages - 1;
  }

  function showTrial(t) {
    const i = byTrial.get(t);
    if (i === undefined) return;
    page = Math.floor(order.indexOf(i) / PAGE);
    open = t;
    render();
    const row = document.querySelector('#board tr[data-trial="' + t + '"]');
    if (row) row.scrollIntoView({ block: "center" });
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
      '"': "&quot;", "'": "&#39;" })[c]);
  }

  document.getElementById("board-prev").onclick = () => { page--; render(); };
  document.getElementById("board-next").onclick = () => { page++; render(); };
  document.querySelectorAll("a.trial").forEach(a => {
    a.onclick = ev => { ev.preventDefault(); showTrial(+a.dataset.trial); };
  });
  render();
  progressPlots();
  paretoPlot("plot-madds", "madds", D.front.madds, "multiply-adds");
  paretoPlot("plot-params", "params", D.front.params, "parameters");
  if (D.front.latency_ms) paretoPlot("plot-latency", "latency_ms", D.front.latency_ms, "latency (ms)");
  hypervolumePlot();
  curvePlot();
  window.dpcReport = { sortBy: sortBy, showTrial: showTrial };
})();
