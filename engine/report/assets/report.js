/* backtest report: draws the page from the JSON in #report-data (see engine/report/html.py). */
(function () {
  "use strict";

  const D = JSON.parse(document.getElementById("report-data").textContent);
  const RUN = JSON.parse(document.getElementById("report-run").textContent);
  const H = D.header;
  const ASC = new Set(D.ascending);
  const METRICS = D.metrics;
  const METRIC_SET = new Set(METRICS);
  const PERCENT = new Set(["total_return", "cagr", "max_drawdown", "win_rate", "avg_trade_return", "best_trade",
    "worst_trade", "exposure", "buy_and_hold_return", "stop_loss", "return"]);
  const MONEY = new Set(["pnl", "max_drawdown_abs", "expectancy", "total_fees", "final_equity", "fees"]);
  const INTS = new Set(["rank", "n_trades", "max_drawdown_duration", "entry_bar", "exit_bar"]);
  const TEXT = new Set(["label", "strategy_id", "strategy", "exit_reason"]);
  const PLOTLY = typeof window.Plotly !== "undefined";
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const ROW_H = 27;

  // --- helpers ------------------------------------------------------------------------------

  const TYPED = { f4: Float32Array, f8: Float64Array, i4: Int32Array };

  // An embedded array: a plain list, base64 binary {dtype, b64} or text codes {names, codes}.
  function arr(o) {
    if (o === null || o === undefined || Array.isArray(o)) return o;
    if (o.dtype === "codes") return Array.from(o.codes, (ch) => o.names[ch.charCodeAt(0) - 48]);
    const bin = atob(o.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return Array.from(new TYPED[o.dtype](bytes.buffer));
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "cls") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  const num = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  function fmt(v, col) {
    if (v === null || v === undefined) return col === "stop_loss" ? "none" : "—";
    if (typeof v === "string") return v;
    if (typeof v === "boolean") return String(v);
    if (PERCENT.has(col)) return (v * 100).toFixed(2) + "%";
    if (MONEY.has(col)) return money.format(v);
    if (DURATIONS.has(col)) return duration(v);
    if (INTS.has(col)) return int.format(v);
    if (Math.abs(v) >= 1e9) return v.toExponential(4);
    if (v !== 0 && Math.abs(v) < 1e-3) return v.toPrecision(3);  // never a small value shown as 0
    return num.format(v);
  }

  // bars and the time they span: "18,925 bars (197 d)"
  const DURATIONS = new Set(["max_drawdown_duration", "avg_bars_held"]);
  function duration(bars) {
    const m = /^(\d+)([mhdwM])$/.exec((H.data && H.data.interval) || "");
    if (!m) return int.format(bars) + " bars";
    const minutes = bars * Number(m[1]) * { m: 1, h: 60, d: 1440, w: 10080, M: 43200 }[m[2]];
    const span = minutes >= 1440 ? int.format(Math.round(minutes / 1440)) + " d"
      : minutes >= 60 ? int.format(Math.round(minutes / 60)) + " h" : int.format(Math.round(minutes)) + " min";
    return int.format(Math.round(bars)) + " bars (" + span + ")";
  }

  function iso(ms) {
    return new Date(ms).toISOString().replace(".000Z", "Z");
  }

  function better(metric, a, b) {  // is a better than b (nulls lose)
    if (a === null) return false;
    if (b === null) return true;
    return ASC.has(metric) ? a < b : a > b;
  }

  function kv(pairs) {
    const dl = el("dl", { cls: "kv" });
    for (const [k, v, cls] of pairs) {
      dl.append(el("dt", { text: k }));
      const dd = el("dd", { text: v });
      if (cls) dd.className = cls;
      dl.append(dd);
    }
    return dl;
  }

  function card(title, body) {
    return el("div", { cls: "card" }, [el("h3", { text: title }), body]);
  }

  // --- header -------------------------------------------------------------------------------

  function renderHeader() {
    const d = H.data, x = H.execution;
    document.title = H.experiment + " · " + RUN.run_id + " · backtest report";
    const head = document.getElementById("header");
    head.append(el("h1", { text: H.experiment }));
    head.append(el("p", { cls: "sub", text: "run " + RUN.run_id + " · created " + RUN.created_at }));
    const pct = (v) => (v === null ? "none" : (v * 100).toFixed(2) + "%");
    const list = (vs, f) => (vs || []).map(f).join(", ");
    const P = H.portfolio || {};
    const timings = Object.keys(RUN.timings || {}).sort()
      .map((k) => [k.replace(/_s$/, ""), RUN.timings[k].toFixed(3) + " s"]);
    const cards = el("div", { cls: "cards" }, [
      card("Data", kv([
        ["symbol", d.symbol || "—"], ["interval", d.interval || "—"], ["source", d.source],
        ["range", d.first_open_time + " → " + d.last_open_time + " UTC"], ["rows", int.format(d.rows)],
        ["gaps", d.gaps_detail], ["fingerprint", d.fingerprint, "mono"],
      ])),
      card("Execution and risk", kv([
        ["capital", money.format(x.capital)], ["commission", (x.commission * 100).toFixed(3) + "% per fill"],
        ["slippage", (x.slippage * 100).toFixed(3) + "%"], ["fill", x.fill],
        ["direction", list(P.direction, String)], ["size", list(P.size, (v) => (v * 100).toFixed(0) + "% of equity")],
        ["stop loss", list(H.risk.stop_loss, pct)], ["take profit", list(H.risk.take_profit, pct)],
        ["trailing stop", list(H.risk.trailing_stop, pct)],
        ["time limit", list(H.risk.max_bars, (v) => (v === null ? "none" : int.format(v) + " bars"))],
      ])),
      ...(H.perp ? [card("Perpetual futures (USDⓈ-M)", kv([
        ["leverage", list(H.perp.leverage, (v) => v + "×")], ["margin", H.perp.margin],
        ["liquidation price", H.perp.liquidation_price === "mark" ? "mark price (mark klines' high/low)"
          : "last price (trade high/low)"],
        ["funding", H.perp.funding ? "on" : "funding off (perp.funding: false)"],
        ["brackets (" + H.perp.brackets_source + ")", H.perp.brackets.map((b) =>
          "≤ " + int.format(b.max_notional) + ": mmr " + (b.mmr * 100).toFixed(2) + "%, cum " +
          int.format(b.cum)).join("; ")],
      ]))] : []),
      card("Sweep", kv([
        ["strategies", H.strategies.join(", ")], ["combinations", int.format(H.combinations)],
        ["filtered by constraints", int.format(H.filtered_by_constraints)],
        ["ranked by", H.rank_by + (ASC.has(H.rank_by) ? " (lower is better)" : "")],
        ["ranked", int.format(H.ranked) + (H.min_trades > 0 ? " (at least " + H.min_trades + " trade" +
          (H.min_trades > 1 ? "s" : "") + "; " + int.format(H.combinations - H.ranked) + " unranked)" : "")],
        ["top K", String(H.top_k)],
      ])),
      card("Engine", kv([
        ["engine", H.engine], ["version", H.engine_version], ["config hash", H.config_hash, "mono"],
      ].concat(timings))),
    ]);
    head.append(cards);
    for (const n of H.notices) head.append(el("p", { cls: "note", text: n }));
    if (!PLOTLY) document.getElementById("plotly-missing").hidden = false;
  }

  // --- summary table ------------------------------------------------------------------------

  const T = D.table;
  const COLS = T.columns;
  // The strategy column says nothing new when there is one strategy (its name starts every label);
  // the full strategy_id repeats the parameter columns: it stays in the data, for the filter.
  const SHOWN = COLS.filter((c) => c !== "strategy_id" && !(c === "strategy" && H.strategies.length < 2));
  const ROWS = T.rows;
  const COL_INDEX = Object.fromEntries(COLS.map((c, i) => [c, i]));

  function compare(col, dir) {
    const j = COL_INDEX[col];
    return (a, b) => {
      const x = ROWS[a][j], y = ROWS[b][j];
      if (x === null || y === null) return x === y ? a - b : x === null ? 1 : -1;  // empty last either way
      if (typeof x === "string" || typeof y === "string") {
        const s = String(x).localeCompare(String(y));
        return s === 0 ? a - b : dir * s;
      }
      return x === y ? a - b : dir * (x < y ? -1 : 1);
    };
  }

  function parseFilter(text) {
    const tests = [];
    for (const token of text.trim().split(/\s+/)) {
      if (!token) continue;
      const m = /^([A-Za-z_][A-Za-z_0-9]*)(<=|>=|!=|==|=|<|>)(.+)$/.exec(token);
      if (m && m[1] in COL_INDEX) {
        const j = COL_INDEX[m[1]], op = m[2];
        let raw = m[3], target;
        if (raw.endsWith("%")) target = parseFloat(raw) / 100;
        else if (raw === "none" || raw === "null") target = null;
        else target = isNaN(Number(raw)) ? raw : Number(raw);
        tests.push((row) => {
          const v = row[j];
          if (target === null) return op === "!=" ? v !== null : v === null;
          if (v === null) return op === "!=";
          if (typeof target === "string") {
            const s = String(v).toLowerCase(), t = target.toLowerCase();
            return op === "!=" ? s !== t : s === t;
          }
          switch (op) {
            case "<": return v < target;
            case "<=": return v <= target;
            case ">": return v > target;
            case ">=": return v >= target;
            case "!=": return v !== target;
            default: return v === target;
          }
        });
      } else {
        const needle = token.toLowerCase();
        const j = COL_INDEX.strategy_id, k = COL_INDEX.label;
        tests.push((row) => String(row[j]).toLowerCase().includes(needle) ||
          (k !== undefined && String(row[k]).toLowerCase().includes(needle)));
      }
    }
    return tests;
  }

  const table = { order: ROWS.map((_, i) => i), sortCol: "rank", sortDir: 1, filter: [] };
  let tbody, wrap, countEl, headCells = {};

  function cell(v, col) {
    const td = el("td", { text: fmt(v, col) });
    if (TEXT.has(col)) td.className = "text";
    else if (METRIC_SET.has(col) && typeof v === "number" && (col === "total_return" || col === "pnl" ||
             col === "sharpe" || col === "cagr" || col === "expectancy")) td.className = v > 0 ? "pos" : v < 0 ? "neg" : "";
    return td;
  }

  function rowEl(i) {
    const r = ROWS[i];
    const tr = el("tr");
    tr.dataset.row = String(i);
    const rank = r[COL_INDEX.rank];
    if (rank === null) tr.className = "unranked";
    else if (rank <= H.top_k) tr.className = "top";
    for (const c of SHOWN) tr.append(cell(r[COL_INDEX[c]], c));
    return tr;
  }

  function spacer(px) {
    const tr = el("tr", { cls: "spacer" });
    const td = el("td", { colspan: String(SHOWN.length) });
    td.style.height = px + "px";
    tr.append(td);
    return tr;
  }

  function drawRows() {
    const n = table.order.length;
    if (T.mode !== "virtual") {
      const frag = document.createDocumentFragment();
      for (const i of table.order) frag.append(rowEl(i));
      tbody.replaceChildren(frag);
      return;
    }
    const top = wrap.scrollTop, h = wrap.clientHeight || 640;
    const first = Math.max(0, Math.floor(top / ROW_H) - 30);
    const last = Math.min(n, Math.ceil((top + h) / ROW_H) + 30);
    const frag = document.createDocumentFragment();
    frag.append(spacer(first * ROW_H));
    for (let k = first; k < last; k++) frag.append(rowEl(table.order[k]));
    frag.append(spacer((n - last) * ROW_H));
    tbody.replaceChildren(frag);
  }

  function refresh() {
    let order = ROWS.map((_, i) => i);
    if (table.filter.length) order = order.filter((i) => table.filter.every((t) => t(ROWS[i])));
    order.sort(compare(table.sortCol, table.sortDir));
    table.order = order;
    for (const c of SHOWN) headCells[c].classList.remove("sorted-asc", "sorted-desc");
    headCells[table.sortCol].classList.add(table.sortDir > 0 ? "sorted-asc" : "sorted-desc");
    countEl.textContent = int.format(order.length) + " of " + int.format(ROWS.length) + " rows";
    if (T.mode === "virtual") wrap.scrollTop = 0;
    drawRows();
  }

  function renderTable() {
    const body = document.getElementById("summary-body");
    if (T.mode === "top") {
      body.append(el("p", { cls: "note", text: "Showing the top " + int.format(ROWS.length) + " of " +
        int.format(T.total) + " combinations. Every combination is in summary.csv (and summary.parquet)." }));
    } else if (T.mode === "virtual") {
      body.append(el("p", { cls: "sub", text: int.format(T.total) +
        " combinations: the table draws the rows in view as it scrolls." }));
    }
    const input = el("input", { type: "search", id: "table-filter",
      placeholder: "filter: text in the combination, or sharpe>1 n_trades>=20 stop_loss=none" });
    countEl = el("span", { cls: "count", id: "table-count" });
    body.append(el("div", { cls: "toolbar" }, [input, countEl,
      el("span", { cls: "count", text: "· click a column to sort · ranked by " + D.rank_by +
        (H.min_trades > 0 ? " · fewer than " + H.min_trades + " trade(s): unranked" : "") })]));
    const thead = el("thead");
    const hr = el("tr");
    for (const c of SHOWN) {
      const th = el("th", { text: c, title: "sort by " + c, "data-col": c });
      if (TEXT.has(c)) th.classList.add("text");
      if (c === D.rank_by) th.classList.add("rankby");
      th.addEventListener("click", () => {
        if (table.sortCol === c) table.sortDir = -table.sortDir;
        else {
          table.sortCol = c;
          table.sortDir = METRIC_SET.has(c) && !ASC.has(c) ? -1 : 1;  // a metric: best first
        }
        refresh();
      });
      headCells[c] = th;
      hr.append(th);
    }
    thead.append(hr);
    tbody = el("tbody");
    const tbl = el("table", { cls: "grid", id: "summary-table" }, [thead, tbody]);
    wrap = el("div", { cls: "table-wrap", id: "summary-wrap" }, [tbl]);
    if (T.mode === "virtual") wrap.addEventListener("scroll", () => window.requestAnimationFrame(drawRows));
    body.append(wrap);
    tbody.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-row]");
      if (!tr) return;
      const rank = ROWS[Number(tr.dataset.row)][COL_INDEX.rank];
      if (rank !== null && rank <= D.top.length) openCombo(rank);
    });
    let timer = null;
    input.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => { table.filter = parseFilter(input.value); refresh(); }, 120);
    });
    refresh();
  }

  // --- heatmaps -----------------------------------------------------------------------------

  function categories(values) {
    const distinct = Array.from(new Set(values));
    const hasNull = distinct.includes(null);
    const rest = distinct.filter((v) => v !== null);
    rest.sort((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))));
    return (hasNull ? [null] : []).concat(rest);
  }

  function label(v, col) {
    if (v === null) return "none";
    return col === "stop_loss" ? (v * 100).toFixed(2) + "%" : String(v);
  }

  function heatmapRows(strategy) {
    const src = D.heatmap.rows || T;
    const idx = Object.fromEntries(src.columns.map((c, i) => [c, i]));
    return { idx, rows: src.rows.filter((r) => r[idx.strategy] === strategy) };
  }

  function drawHeatmap(div, strategy, axes, metric, xc, yc) {
    const { idx, rows } = heatmapRows(strategy);
    const xs = categories(rows.map((r) => r[idx[xc]]));
    const ys = yc ? categories(rows.map((r) => r[idx[yc]])) : [null];
    const xi = new Map(xs.map((v, i) => [v, i])), yi = new Map(ys.map((v, i) => [v, i]));
    const best = ys.map(() => xs.map(() => null));
    const count = ys.map(() => xs.map(() => 0));
    const m = idx[metric];
    for (const r of rows) {
      const i = yc ? yi.get(r[idx[yc]]) : 0, j = xi.get(r[idx[xc]]);
      count[i][j] += 1;
      const cur = best[i][j];
      if (cur === null || better(metric, r[m], cur[m])) best[i][j] = r;
    }
    const z = best.map((row) => row.map((r) => (r === null ? null : r[m])));
    const text = best.map((row, i) => row.map((r, j) => {
      if (r === null) return "";
      const lines = ["<b>" + (idx.label !== undefined ? r[idx.label] : r[idx.strategy_id]) + "</b>",
        "rank: " + fmt(r[idx.rank], "rank")];
      if (count[i][j] > 1) lines.push("best by " + metric + " of " + count[i][j] + " combinations in this cell");
      for (const k of METRICS) lines.push((k === metric ? "<b>" : "") + k + ": " + fmt(r[idx[k]], k) + (k === metric ? "</b>" : ""));
      return lines.join("<br>");
    }));
    const small = xs.length <= 20 && ys.length <= 20;
    const trace = {
      type: "heatmap", x: xs.map((v) => label(v, xc)), y: ys.map((v) => (yc ? label(v, yc) : strategy)), z: z,
      text: text, customdata: best.map((row) => row.map((r) => (r === null ? null : r[idx.strategy_id]))),
      hovertemplate: "%{text}<extra></extra>", colorscale: "Viridis", reversescale: ASC.has(metric),
      xgap: 1, ygap: 1, colorbar: { title: { text: metric + (ASC.has(metric) ? " (lower is better)" : "") } },
      hoverongaps: false,
    };
    if (small) { trace.texttemplate = PERCENT.has(metric) ? "%{z:.1%}" : "%{z:.3~g}"; trace.textfont = { size: 11 }; }
    const layout = {
      height: Math.max(260, Math.min(620, 120 + 34 * ys.length)), margin: { l: 80, r: 20, t: 20, b: 60 },
      xaxis: { title: { text: xc }, type: "category" },
      yaxis: { title: { text: yc || "" }, type: "category" },
    };
    window.Plotly.react(div, [trace], layout, PLOT_CONFIG);
  }

  function select(options, value, onChange) {
    const s = el("select");
    for (const o of options) s.append(el("option", { value: o, text: o }));
    s.value = value;
    s.addEventListener("change", () => onChange(s.value));
    return s;
  }

  function renderHeatmaps() {
    const body = document.getElementById("heatmaps-body");
    const names = Object.keys(D.heatmap.axes).sort();
    if (D.heatmap.rows) {
      body.append(el("p", { cls: "note", text: "Each cell shows the combination best by " + D.rank_by +
        " among all " + int.format(T.total) + " (the first two swept parameters); other colourings show " +
        "that combination's value." }));
    }
    let drawn = 0;
    for (const name of names) {
      const axes = D.heatmap.axes[name];
      if (!axes.length) continue;
      const state = { metric: D.rank_by, x: axes[0], y: axes.length > 1 ? axes[1] : "" };
      const div = el("div", { cls: "chart heatmap", id: "heatmap-" + name });
      const redraw = () => { if (PLOTLY) drawHeatmap(div, name, axes, state.metric, state.x, state.y || null); };
      const controls = [el("b", { text: name }), el("label", { text: "colour " }), select(METRICS, state.metric, (v) => { state.metric = v; redraw(); })];
      if (!D.heatmap.rows && axes.length > 1) {
        controls.push(el("label", { text: "x " }), select(axes, state.x, (v) => { state.x = v; redraw(); }));
        controls.push(el("label", { text: "y " }), select(axes, state.y, (v) => { state.y = v; redraw(); }));
      }
      body.append(el("div", { cls: "heat-card" }, [el("div", { cls: "toolbar" }, controls), div]));
      redraw();
      if (PLOTLY) {
        div.on("plotly_click", (ev) => {
          const p = ev.points && ev.points[0];
          const id = p && p.customdata;  // the full strategy_id: one filter token, never ambiguous
          if (!id) return;
          const input = document.getElementById("table-filter");
          input.value = id;
          table.filter = parseFilter(id);
          refresh();
          document.getElementById("summary").scrollIntoView();
        });
      }
      drawn += 1;
    }
    if (!drawn) body.append(el("p", { cls: "sub", text: "No parameter takes more than one value: nothing to map." }));
  }

  // --- top combinations ---------------------------------------------------------------------

  // the held-out bars: shaded from the cut to the end, the cut marked and labelled
  function holdoutShading(layout) {
    if (D.holdout_from == null) return;
    const x0 = D.holdout_from;
    const times = arr(D.equity.time);
    layout.shapes = [
      { type: "rect", xref: "x", yref: "paper", x0: x0, x1: times[times.length - 1],
        y0: 0, y1: 1, fillcolor: "rgba(255,193,7,0.15)", line: { width: 0 }, layer: "below", name: "holdout" },
      { type: "line", xref: "x", yref: "paper", x0: x0, x1: x0, y0: 0, y1: 1, line: { color: "#b9770e", width: 1.5, dash: "dash" } },
    ];
    layout.annotations = [{ x: x0, xref: "x", y: 1, yref: "paper", text: "out of sample (holdout) →", showarrow: false,
      xanchor: "left", yanchor: "bottom", font: { color: "#b9770e" } }];
  }

  function drawEquity(div, t, log) {
    const x = arr(D.equity.time);
    const dd = arr(t.drawdown);
    const traces = [
      { type: "scatter", mode: "lines", x: x, y: arr(D.equity.benchmark), name: "Buy & hold",
        line: { color: "#8c8c8c", width: 1.2 }, hovertemplate: "%{y:,.2f}" },
      { type: "scatter", mode: "lines", x: x, y: arr(t.equity), name: "Strategy",
        line: { color: "#1f5fa8", width: 1.8 }, hovertemplate: "%{y:,.2f}" },
      { type: "scatter", mode: "lines", x: x, y: dd.map((v) => -100 * v), name: "Drawdown", yaxis: "y2",
        fill: "tozeroy", line: { color: "#c0392b", width: 1 }, fillcolor: "rgba(192,57,43,0.25)",
        hovertemplate: "%{y:.2f}%" },
    ];
    const layout = {
      height: 540, margin: { l: 80, r: 20, t: 40, b: 40 }, hovermode: "x unified",
      legend: { orientation: "h", x: 0, y: 1.1 },
      xaxis: { type: "date", anchor: "y2" },
      yaxis: { domain: [0.36, 1], title: { text: "Equity" }, type: log ? "log" : "linear" },
      yaxis2: { domain: [0, 0.28], title: { text: "Drawdown" }, ticksuffix: "%" },
    };
    holdoutShading(layout);
    return window.Plotly.react(div, traces, layout, PLOT_CONFIG);
  }

  function tradeColumns(t) {
    const c = {};
    for (const f of t.trades.fields) c[f] = arr(t.trades.columns[f]);
    return c;
  }

  function drawCandles(div, t, tr) {
    const C = D.candles;
    const bars = C.bucket > 1 ? " (" + C.bucket + " bars per candle)" : "";
    const reasons = tr.exit_reason;
    const traces = [
      { type: "candlestick", name: (H.data.symbol || "") + " " + (H.data.interval || "") + bars, x: arr(C.time),
        open: arr(C.open), high: arr(C.high), low: arr(C.low), close: arr(C.close),
        increasing: { line: { color: "#26a69a" } }, decreasing: { line: { color: "#ef5350" } } },
      { type: "scatter", mode: "markers", name: "entries", x: tr.entry_time, y: tr.entry_price,
        marker: { symbol: "triangle-up", size: 10, color: "#1e8a4c", line: { color: "#ffffff", width: 1 } },
        hovertemplate: "entry %{x|%Y-%m-%d %H:%M} UTC<br>price %{y}<extra></extra>" },
      { type: "scatter", mode: "markers", name: "exits", x: tr.exit_time, y: tr.exit_price, text: reasons,
        marker: { symbol: "triangle-down", size: 10, color: reasons.map((r) => (r === "stop" ? "#e67e22" : r === "open" ? "#7f8c8d" : "#c0392b")),
          line: { color: "#ffffff", width: 1 } },
        hovertemplate: "exit (%{text}) %{x|%Y-%m-%d %H:%M} UTC<br>price %{y}<extra></extra>" },
    ];
    if (H.perp) {  // liquidations marked apart, and the funding received so far at each exit
      const liq = reasons.map((r, i) => (r === "liquidation" ? i : -1)).filter((i) => i >= 0);
      traces.push({ type: "scatter", mode: "markers", name: "liquidations", x: liq.map((i) => tr.exit_time[i]),
        y: liq.map((i) => tr.exit_price[i]),
        marker: { symbol: "x", size: 12, color: "#000000", line: { color: "#ffffff", width: 1 } },
        hovertemplate: "liquidation %{x|%Y-%m-%d %H:%M} UTC<br>price %{y}<extra></extra>" });
      let sum = 0;
      const paid = (tr.funding || []).map((f) => (sum -= f));
      traces.push({ type: "scatter", mode: "lines", line: { shape: "hv", color: "#8e44ad" }, yaxis: "y2",
        name: "funding paid (cumulative, at exits)", x: tr.exit_time, y: paid,
        hovertemplate: "funding paid so far %{y:.2f}<extra></extra>" });
    }
    const layout = {
      height: 480, margin: { l: 80, r: 20, t: 40, b: 40 }, legend: { orientation: "h", x: 0, y: 1.1 },
      xaxis: { type: "date", rangeslider: { visible: false } }, yaxis: { title: { text: "Price" } },
    };
    holdoutShading(layout);
    if (H.perp) layout.yaxis2 = { title: { text: "Funding paid" }, overlaying: "y", side: "right", showgrid: false };
    return window.Plotly.react(div, traces, layout, PLOT_CONFIG);
  }

  const TRADE_SHOWN_AS = { entry_time: "time", exit_time: "time", entry_bar: "skip", exit_bar: "skip" };

  function tradesTable(t, c) {
    const fields = t.trades.fields.filter((f) => TRADE_SHOWN_AS[f] !== "skip");
    const bars = "entry_bar" in c && "exit_bar" in c;
    const cols = ["#"].concat(fields, bars ? ["bars held"] : []);
    const thead = el("thead", null, [el("tr", null, cols.map((h) => el("th", { text: h, cls: TEXT.has(h) ? "text" : "" })))]);
    const frag = document.createDocumentFragment();
    const n = t.trades.shown;
    for (let i = 0; i < n; i++) {
      const tr = el("tr");
      tr.append(el("td", { text: String(i + 1) }));
      for (const f of fields) {
        const v = c[f][i];
        if (TRADE_SHOWN_AS[f] === "time") tr.append(el("td", { text: iso(v) }));
        else if (typeof v === "string") tr.append(el("td", { cls: "text", text: v }));
        else tr.append(cell(v, f));
      }
      if (bars) tr.append(el("td", { text: String(c.exit_bar[i] - c.entry_bar[i]) }));
      frag.append(tr);
    }
    const tbody = el("tbody");
    tbody.append(frag);
    return el("div", { cls: "trades-wrap" }, [el("table", { cls: "grid trades", id: "trades-" + t.rank }, [thead, tbody])]);
  }

  function renderCombo(box, t) {
    const inner = box.querySelector(".inner");
    const m = el("div", { cls: "metrics" });
    const params = Object.keys(t.params).sort().map((p) => [p, t.params[p]]);
    for (const [k, v] of params) m.append(el("div", null, [el("span", { text: k }), fmt(v, k)]));
    // every position rule (swept or not), then the out-of-sample evidence beside the in-sample metrics
    for (const k of Object.keys(t.rules || {})) m.append(el("div", null, [el("span", { text: k }), fmt(t.rules[k], k)]));
    for (const k of Object.keys(t.evidence || {})) m.append(el("div", { cls: "evidence" }, [el("span", { text: k }), fmt(t.evidence[k], k)]));
    for (const k of METRICS) m.append(el("div", null, [el("span", { text: k }), fmt(t.metrics[k], k)]));
    inner.append(m);
    const trades = tradeColumns(t);
    if (PLOTLY) {
      const eq = el("div", { cls: "chart equity", id: "equity-" + t.rank });
      const log = el("input", { type: "checkbox", id: "log-" + t.rank });
      inner.append(el("div", { cls: "toolbar" }, [el("h3", { text: "Equity, buy & hold and drawdown" }),
        el("label", { cls: "toggle", for: "log-" + t.rank }, [log, " log scale"])]));
      inner.append(eq);
      drawEquity(eq, t, false);
      log.addEventListener("change", () => window.Plotly.relayout(eq, { "yaxis.type": log.checked ? "log" : "linear" }));
      inner.append(el("h3", { text: "Candles with entries ▲ and exits ▼" }));
      if (D.candles.bucket > 1) {
        inner.append(el("p", { cls: "sub", text: "Each candle aggregates " + D.candles.bucket +
          " bars for display; trade markers sit at their exact times and fill prices." }));
      }
      const cd = el("div", { cls: "chart candles", id: "candles-" + t.rank });
      inner.append(cd);
      drawCandles(cd, t, trades);
    }
    const tt = t.trades;
    inner.append(el("h3", { text: "Trades (" + int.format(tt.total) + ")" }));
    if (tt.shown < tt.total) {
      inner.append(el("p", { cls: "note", text: "The first " + int.format(tt.shown) + " of " + int.format(tt.total) +
        " trades are shown and marked; every trade is in trades/" + t.strategy_id + ".csv." }));
    }
    inner.append(tradesTable(t, trades));
    const file = encodeURIComponent(t.file);  // the file's name (engine.filenames), as a URL path segment
    inner.append(el("p", { cls: "sub" }, ["Files: ",
      el("a", { href: "trades/" + file + ".csv", text: "trades/" + t.strategy_id + ".csv" }), " · ",
      el("a", { href: "runs/" + file + ".json", text: "runs/" + t.strategy_id + ".json" })]));
  }

  function openCombo(rank) {
    const box = document.getElementById("combo-" + rank);
    if (!box) return;
    box.open = true;
    box.scrollIntoView();
  }

  function renderTop() {
    const body = document.getElementById("top-body");
    if (!D.top.length) {
      body.append(el("p", { cls: "sub", text: "No ranked combination." }));
      return;
    }
    body.append(el("p", { cls: "sub", text: "The best " + D.top.length + " by " + D.rank_by +
      ". Open one to draw its charts." }));
    D.top.forEach((t, k) => {
      const summary = el("summary", null, ["#" + t.rank + " " + (t.label || t.strategy_id),
        el("span", { cls: "stat", text: D.rank_by + " " + fmt(t.metrics[D.rank_by], D.rank_by) +
          " · return " + fmt(t.metrics.total_return, "total_return") +
          " · " + int.format(t.metrics.n_trades) + " trades" })]);
      const box = el("details", { cls: "combo", id: "combo-" + t.rank }, [summary, el("div", { cls: "inner" })]);
      let drawn = false;
      const draw = () => { if (box.open && !drawn) { drawn = true; renderCombo(box, t); } };
      box.addEventListener("toggle", draw);
      body.append(box);
      if (k === 0) { box.open = true; draw(); }
    });
  }

  // --- validation and config ----------------------------------------------------------------

  // the verdict leads the page: a banner coloured by its level (engine.validation.verdict)
  function renderVerdict() {
    const v = D.validation;
    if (!v || !v.level) return;
    const b = document.getElementById("verdict");
    b.classList.add("verdict-" + v.level);
    b.append(el("strong", { cls: "verdict-level", text: v.level.toUpperCase() }), el("span", { text: " " + v.summary.slice(v.level.length + 2) }));
    b.hidden = false;
  }

  function renderValidation() {
    const v = D.validation;
    if (!v) return;
    document.getElementById("validation").hidden = false;
    document.getElementById("nav-validation").hidden = false;
    if (v.title) document.getElementById("validation-title").textContent = v.title;
    const body = document.getElementById("validation-body");
    if (v.summary) body.append(el("p", { text: v.summary }));
    if (v.metrics) body.append(card("Metrics", kv(Object.keys(v.metrics).map((k) => [k, fmt(v.metrics[k], k)]))));
    for (const t of v.tables || []) {
      body.append(el("h3", { text: t.title || "" }));
      const thead = el("thead", null, [el("tr", null, t.columns.map((c) => el("th", { text: c })))]);
      const tbody = el("tbody", null, t.rows.map((r) => el("tr", null, r.map((x, j) => cell(x, t.columns[j])))));
      body.append(el("div", { cls: "table-wrap" }, [el("table", { cls: "grid" }, [thead, tbody])]));
    }
    for (const c of v.charts || []) {
      body.append(el("h3", { text: c.title || "" }));
      const div = el("div", { cls: "chart" });
      body.append(div);
      if (PLOTLY) window.Plotly.newPlot(div, c.data || [], c.layout || {}, PLOT_CONFIG);
    }
  }

  renderVerdict();
  renderHeader();
  renderTable();
  renderHeatmaps();
  renderTop();
  renderValidation();
  document.getElementById("config-text").textContent = D.config_text;
})();
