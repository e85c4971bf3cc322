"""report.html of a universe run: one self-contained page (no network), drawn with inline SVG.

Sections: the ranking by the aggregate; a heatmap of M for the top 50 combinations against
every series; each top-K combination's per-series spread (a strip plot); its equity on each
series with a series selector; validation per series and the cross-sectional λ histogram.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..jsonio import clean, write_text_atomic
from ..universe.aggregate import PERP_SUMS
from ..universe.runner import UniverseResults
from .html import _escape, _json_for_script
from .labels import label_of, labels_of, swept_of
from .perp_header import perp_header

#: combinations in the heatmap
HEATMAP_ROWS = 50
#: ranking rows shown
TABLE_ROWS = 200
#: points per equity curve at most
EQUITY_POINTS = 1_000


def _num(x):
    v = clean(x)
    return None if v is None else (round(v, 6) if isinstance(v, float) else v)


def _every(n: int) -> np.ndarray:
    if n <= EQUITY_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, EQUITY_POINTS).round().astype(np.int64))


def payload(res: UniverseResults, validation: dict | None) -> dict:
    cfg, rank_by = res.cfg, res.cfg.report.rank_by
    keys = list(res.keys)
    ranked = res.ranked
    agg_cols = [c for c in ranked.columns if c.startswith(f"{rank_by}_")] + ["profitable_share", "series",
                                                                             "rank_mean", "n_trades"]
    agg_cols += [c for c in PERP_SUMS if c in ranked.columns]  # perp universes
    names = swept_of(res.grid)
    head = ranked.head(TABLE_ROWS).assign(label=lambda f: labels_of(f, names))
    table_cols = ["rank", "label", *agg_cols]
    table = {"columns": table_cols, "rows": [[_num(v) if not isinstance(v, str) else v for v in row]
                                             for row in head[table_cols].itertuples(index=False)]}
    n = len(keys)
    M = res.by_series[rank_by].to_numpy(np.float64).reshape(n, -1)
    heat_ids = [int(c) for c in ranked["combination"].head(HEATMAP_ROWS)]
    heatmap = {"combinations": labels_of(ranked.head(HEATMAP_ROWS), names),
               "ids": [str(s) for s in ranked["strategy_id"].head(HEATMAP_ROWS)], "series": keys,
               "values": [[_num(M[s, g]) for s in range(n)] for g in heat_ids]}
    top = []
    for g in res.top:
        row = ranked[ranked["combination"] == g].iloc[0]
        equity = {}
        for r in res.runs:
            e = res.details[(r.series.key, g)].equity
            idx = _every(len(e))
            equity[r.series.key] = [_num(x) for x in e[idx]]
        top.append({"combination": g, "strategy_id": str(row["strategy_id"]), "label": label_of(row, names),
                    "rank": int(row["rank"]),
                    "values": [_num(M[s, g]) for s in range(n)], "equity": equity})
    val = None
    if validation is not None:
        val = {"verdict": validation["verdict"], "summary": validation["summary"],
               "series": {k: {"verdict": d["verdict"], "pbo": (d["pbo"] or {}).get("pbo"),
                              "top": (d["top"] or {}).get("label", (d["top"] or {}).get("strategy_id")), "dsr": (d["top"] or {}).get("dsr"),
                              "holdout_spearman": (d["holdout"] or {}).get("spearman")}
                          for k, d in validation["series"].items()},
               "lambdas": [s["lambda"] for s in (validation["cross_series"] or {}).get("splits", [])],
               "cross_pbo": (validation["cross_series"] or {}).get("pbo")}
    return {"header": {"experiment": cfg.name, "engine": res.engine, "series": keys, "combinations": len(res.grid),
                       "rank_by": rank_by, "aggregate": cfg.report.aggregate, "capital": cfg.execution.capital,
                       "perp": _perp(cfg, res)},
            "table": table, "heatmap": heatmap, "top": top, "validation": val}


def _perp(cfg, res: UniverseResults) -> dict | None:
    """The perp card of a single run's header, once per series: brackets and the liquidation basis can differ."""
    if cfg.perp is None:
        return None
    cards = {r.series.key: perp_header(cfg, r.candles) for r in res.runs}
    first = next(iter(cards.values()))
    return {"leverage": first["leverage"], "margin": first["margin"], "funding": first["funding"],
            "series": {k: {"liquidation_price": c["liquidation_price"], "brackets": c["brackets"],
                           "brackets_source": c["brackets_source"]} for k, c in cards.items()}}


def render(data: dict, volatile: dict) -> str:
    title = _escape(f"{data['header']['experiment']} · universe report")
    return (_PAGE.replace("{{TITLE}}", title)
            .replace("{{RUN}}", _json_for_script(volatile))
            .replace("{{DATA}}", _json_for_script(data)))


def write_universe_html(out: Path, res: UniverseResults, validation: dict | None, volatile: dict) -> None:
    write_text_atomic(out / "report.html", render(payload(res, validation), volatile))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4}td:nth-child(2){text-align:left}section{margin:2em 0}
.cell{stroke:#fff;stroke-width:.5}.label{font-size:10px}#tip{font-size:12px;min-height:1.2em}
</style></head><body>
<h1 id="title"></h1><p id="meta"></p><div id="perp"></div>
<section id="ranking"><h2>Ranking</h2><div id="table"></div></section>
<section id="heat"><h2>M by combination and series</h2><p id="tip"></p><svg id="heatmap"></svg></section>
<section id="spread"><h2>Spread across series (top K)</h2><svg id="strip"></svg></section>
<section id="equity"><h2>Equity per series</h2>
<label>series <select id="series-select"></select></label> <svg id="equity-chart" width="900" height="320"></svg></section>
<section id="validation"><h2>Validation</h2><div id="validation-body"></div><svg id="lambda-hist"></svg></section>
<script id="report-run" type="application/json">{{RUN}}</script>
<script id="data" type="application/json">{{DATA}}</script>
<script>
"use strict";
const D=JSON.parse(document.getElementById("data").textContent);
const NS="http://www.w3.org/2000/svg";
function el(tag,attrs,parent){const e=document.createElementNS(NS,tag);for(const k in attrs)e.setAttribute(k,attrs[k]);if(parent)parent.appendChild(e);return e;}
function fmt(v){return v===null||v===undefined?"—":(typeof v==="number"&&!Number.isInteger(v)?v.toFixed(4):String(v));}
const H=D.header;
document.getElementById("title").textContent=H.experiment+" · universe of "+H.series.length+" series";
document.getElementById("meta").textContent=H.combinations+" combinations × "+H.series.length+" series ("+H.series.join(", ")+"); ranked by "+H.aggregate+" "+H.rank_by;
(function perp(){const P=H.perp;if(!P)return;const box=document.getElementById("perp");
const p=document.createElement("p");p.textContent="Perpetual futures (USDⓈ-M): leverage "+P.leverage.map(v=>v+"×").join(", ")+"; "+P.margin+" margin; "+(P.funding?"funding on":"funding off (perp.funding: false)");box.appendChild(p);
const t=document.createElement("table");t.id="perp-series";const hr=t.insertRow();for(const c of ["series","liquidation price","brackets","first bracket"]){const th=document.createElement("th");th.textContent=c;hr.appendChild(th);}
for(const k of H.series){const s=P.series[k],b=s.brackets[0],r=t.insertRow();
r.insertCell().textContent=k;r.insertCell().textContent=s.liquidation_price==="mark"?"mark price":"last price";
r.insertCell().textContent=s.brackets.length+" ("+s.brackets_source+")";r.insertCell().textContent="≤ "+b.max_notional+": mmr "+b.mmr+", cum "+b.cum;}
box.appendChild(t);})();
(function table(){const t=document.createElement("table");const tr=t.insertRow();for(const c of D.table.columns){const th=document.createElement("th");th.textContent=c;tr.appendChild(th);}
for(const row of D.table.rows){const r=t.insertRow();for(const v of row){r.insertCell().textContent=fmt(v);}}document.getElementById("table").appendChild(t);})();
function colour(v,lo,hi){if(v===null)return "#eee";const x=hi>lo?(v-lo)/(hi-lo):0.5;const r=Math.round(215*(1-x)+26*x),g=Math.round(48*(1-x)+152*x),b=Math.round(39*(1-x)+80*x);return "rgb("+r+","+g+","+b+")";}
(function heatmap(){const hm=D.heatmap,svg=document.getElementById("heatmap");const cw=Math.max(24,Math.min(80,700/hm.series.length)),ch=14,left=260,top=90;
const flat=hm.values.flat().filter(v=>v!==null);const lo=Math.min(...flat),hi=Math.max(...flat);
svg.setAttribute("width",left+cw*hm.series.length+20);svg.setAttribute("height",top+ch*hm.combinations.length+10);
hm.series.forEach((s,j)=>{const t=el("text",{x:left+cw*j+cw/2,y:top-6,class:"label",transform:"rotate(-45 "+(left+cw*j+cw/2)+" "+(top-6)+")"},svg);t.textContent=s;});
hm.combinations.forEach((c,i)=>{const t=el("text",{x:left-4,y:top+ch*i+ch-3,class:"label","text-anchor":"end"},svg);t.textContent=c;
hm.series.forEach((s,j)=>{const v=hm.values[i][j];const r=el("rect",{x:left+cw*j,y:top+ch*i,width:cw,height:ch,fill:colour(v,lo,hi),class:"cell","data-combination":hm.ids[i],"data-series":s,"data-value":v===null?"":v},svg);
el("title",{},r).textContent=c+" · "+s+": "+fmt(v);
r.addEventListener("mouseenter",()=>{document.getElementById("tip").textContent=c+" on "+s+": "+H.rank_by+" "+fmt(v);});});});})();
(function strip(){const svg=document.getElementById("strip"),rows=D.top,left=260,w=600,rh=22;svg.setAttribute("width",left+w+40);svg.setAttribute("height",rh*rows.length+30);
const flat=rows.flatMap(r=>r.values).filter(v=>v!==null);if(!flat.length)return;const lo=Math.min(...flat),hi=Math.max(...flat);const X=v=>left+(hi>lo?(v-lo)/(hi-lo):0.5)*w;
rows.forEach((r,i)=>{const y=rh*i+15;const t=el("text",{x:left-6,y:y+4,class:"label","text-anchor":"end"},svg);t.textContent="#"+r.rank+" "+r.label;
el("line",{x1:left,x2:left+w,y1:y,y2:y,stroke:"#ddd"},svg);const vs=r.values.filter(v=>v!==null).sort((a,b)=>a-b);
if(vs.length){const med=vs[Math.floor((vs.length-1)/2)]*0.5+vs[Math.ceil((vs.length-1)/2)]*0.5;el("line",{x1:X(med),x2:X(med),y1:y-8,y2:y+8,stroke:"#333","stroke-width":2},svg);}
r.values.forEach((v,j)=>{if(v===null)return;const c=el("circle",{cx:X(v),cy:y,r:4,fill:"#1f77b4","fill-opacity":0.6,class:"dot","data-series":H.series[j]},svg);el("title",{},c).textContent=H.series[j]+": "+fmt(v);});});})();
(function equity(){const sel=document.getElementById("series-select"),svg=document.getElementById("equity-chart");
H.series.forEach(s=>{const o=document.createElement("option");o.value=s;o.textContent=s;sel.appendChild(o);});
const colours=["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
function draw(){const s=sel.value;while(svg.firstChild)svg.removeChild(svg.firstChild);svg.setAttribute("data-series",s);
const curves=D.top.map(t=>t.equity[s]);const flat=curves.flat().filter(v=>v!==null&&v>0);if(!flat.length)return;
const lo=Math.log(Math.min(...flat)),hi=Math.log(Math.max(...flat));const W=860,Hh=280;
curves.forEach((c,k)=>{const pts=c.map((v,i)=>v===null||v<=0?null:[30+W*i/Math.max(1,c.length-1),10+Hh*(1-(hi>lo?(Math.log(v)-lo)/(hi-lo):0.5))]).filter(p=>p);
const p=el("polyline",{points:pts.map(q=>q[0].toFixed(1)+","+q[1].toFixed(1)).join(" "),fill:"none",stroke:colours[k%colours.length],"stroke-width":1.2,class:"curve","data-strategy":D.top[k].strategy_id},svg);
el("title",{},p).textContent="#"+D.top[k].rank+" "+D.top[k].label+" on "+s;});}
sel.addEventListener("change",draw);if(H.series.length)draw();})();
(function validation(){const V=D.validation,body=document.getElementById("validation-body");if(!V){body.textContent="No validation section in the config.";return;}
const p=document.createElement("p");p.id="verdict";p.textContent=V.verdict;body.appendChild(p);
const t=document.createElement("table");t.id="validation-series";const h=t.insertRow();["series","PBO","its top","DSR","holdout Spearman","verdict"].forEach(c=>{const th=document.createElement("th");th.textContent=c;h.appendChild(th);});
for(const k in V.series){const s=V.series[k],r=t.insertRow();[k,s.pbo,s.top,s.dsr,s.holdout_spearman,s.verdict].forEach(v=>{r.insertCell().textContent=fmt(v);});}body.appendChild(t);
const L=V.lambdas;const svg=document.getElementById("lambda-hist");if(!L.length)return;const fin=L.filter(x=>x!==null);
const lo=Math.min(...fin,-1),hi=Math.max(...fin,1),bins=20,counts=new Array(bins).fill(0);fin.forEach(x=>{counts[Math.min(bins-1,Math.floor((x-lo)/(hi-lo)*bins))]++;});
const W=600,Hh=160,mx=Math.max(...counts);svg.setAttribute("width",W+40);svg.setAttribute("height",Hh+40);
counts.forEach((c,i)=>{el("rect",{x:20+W*i/bins,y:10+Hh*(1-c/mx),width:W/bins-1,height:Hh*c/mx,fill:(lo+(i+0.5)*(hi-lo)/bins)<=0?"#d62728":"#1f77b4",class:"bin","data-count":c},svg);});
const z=20+W*(0-lo)/(hi-lo);el("line",{x1:z,x2:z,y1:5,y2:Hh+10,stroke:"#333"},svg);
const cap=el("text",{x:20,y:Hh+32,class:"label"},svg);cap.textContent="cross-sectional λ over "+L.length+" splits; PBO "+fmt(V.cross_pbo);})();
</script></body></html>
"""
