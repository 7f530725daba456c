"""``gristmill report``: one self-contained HTML file (CSS, JS and charts inline; no network when viewed).

It holds the curation funnel and drop reasons, length histograms, kind and label charts (matplotlib, inlined as
SVG), an example browser (search, filter by kind, source and label; messages shown as a chat with their
provenance: source document, section, template, generator, judge verdict), a rejects browser, the dataset card,
and when the run has them the training loss curve, the preflight table and the eval table against the baseline.

Document text is data, never markup: tables are built with ``html.escape`` and the browsers put text into the
page with ``textContent`` from a JSON block in which ``<`` is escaped, so a document containing ``<script>``
cannot run. The browsers read an initial filter from the URL fragment (``report.html#kind=refusal``).
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from curate.layout import RunLayout
from curate.output import check_dataset_dir, read_jsonl
from curate.text import count_words


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # creator and licence boilerplate
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inline in HTML


def _charts(stats: dict[str, Any], examples: list[dict], documents: list[dict], loss: list[dict]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.fonttype": "none", "figure.dpi": 80})
    charts = {}
    steps = stats["steps"]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(steps) + 0.8))
    names = [f"{i:02d} {s['step']}" for i, s in enumerate(steps)]  # a stage can run twice (dedupe.exact)
    ax.barh(names[::-1], [s["rows_out"] for s in steps][::-1], color="#4878a8")
    ax.set_xlabel("rows out of each step")
    charts["funnel"] = _svg(fig)
    plt.close(fig)
    reasons = stats["rejects"]["by_reason"]
    if reasons:
        ranked = sorted(reasons.items(), key=lambda kv: kv[1])
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(ranked) + 0.8))
        ax.barh([k for k, _ in ranked], [v for _, v in ranked], color="#c0504d")
        ax.set_xlabel("rejected")
        charts["reasons"] = _svg(fig)
        plt.close(fig)
    kinds = sorted({e["kind"] for e in examples})
    fig, ax = plt.subplots(figsize=(7, 2.8))
    train = [stats["examples"]["train"].get(k, 0) for k in kinds]
    test = [stats["examples"]["test"].get(k, 0) for k in kinds]
    ax.bar(kinds, train, label="train", color="#4878a8")
    ax.bar(kinds, test, bottom=train, label="test", color="#f0a030")
    ax.legend()
    ax.tick_params(axis="x", rotation=30)
    ax.set_ylabel("examples")
    charts["kinds"] = _svg(fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for kind in kinds:
        lengths = [count_words(e["messages"][-1]["content"]) for e in examples if e["kind"] == kind]
        ax.hist(lengths, bins=30, histtype="step", label=kind)
    ax.set_xlabel("words in the response")
    ax.set_ylabel("examples")
    ax.legend(fontsize=7)
    charts["lengths"] = _svg(fig)
    plt.close(fig)
    labels: dict[str, Counter] = {}
    for d in documents:
        for key, value in json.loads(d.get("labels") or "{}").items():
            if isinstance(value, (str, bool)):
                labels.setdefault(key, Counter())[str(value)] += 1
    if labels:
        fig, axes = plt.subplots(1, len(labels), figsize=(2.4 * len(labels), 2.4))
        for ax, (key, counts) in zip(axes if len(labels) > 1 else [axes], sorted(labels.items()), strict=True):
            ax.bar(list(counts), list(counts.values()), color="#6a9a58")
            ax.set_title(key)
            ax.tick_params(axis="x", rotation=45)
        charts["labels"] = _svg(fig)
        plt.close(fig)
    if loss:
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.plot([p["step"] for p in loss], [p["loss"] for p in loss], color="#4878a8")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        charts["loss"] = _svg(fig)
        plt.close(fig)
    return charts


def preference_section(pref: dict[str, Any]) -> str:
    """DPO after SFT: the pairs per kind, what was dropped, and the loss and reward margin per logged step."""
    import matplotlib.pyplot as plt

    dropped = pref.get("dropped_base_declined") or {}
    pairs = [[kind, n, dropped.get(kind, 0)] for kind, n in pref["pairs"].items()]
    settings = pref.get("dpo") or {}
    facts = [["method", pref["method"]], ["steps", pref["steps"]], ["wall seconds", pref["wall_seconds"]],
             ["beta", settings.get("beta")], ["learning rate", settings.get("learning_rate")]]  # fmt: skip
    out = _table(["", ""], facts, "narrow")
    out += _table(["kind", "pairs", "dropped: the base declined too"], pairs, "narrow")
    curve = pref.get("curve") or []
    if curve:
        fig, ax = plt.subplots(figsize=(7, 2.6))
        steps = [c["step"] for c in curve]
        ax.plot(steps, [c["loss"] for c in curve], color="#4878a8", label="DPO loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        margin = ax.twinx()
        margin.plot(steps, [c["margin"] or 0 for c in curve], color="#d08040", label="reward margin")
        margin.set_ylabel("reward margin (chosen - rejected)")
        fig.legend(loc="upper center", ncol=2, frameon=False)
        out += _svg(fig)
        plt.close(fig)
    return out


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def evaluation_section(report: dict[str, Any]) -> str:
    """Each kind's metrics per model with 95% intervals (regressions in red), the verdicts against each baseline,
    every regression, and the targets."""

    def cell(e: dict | None) -> str:
        return "–" if not e else f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"

    tags = list(report["models"])
    targets = {t["metric"]: t for t in report["targets"]}
    regressed = {(r["label"], r["metric"]) for r in report.get("regressions", [])}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["kind", "n", "metric", *tags, "target"])
    body = []
    for label, row in report["kinds"].items():
        for metric in row["trained"]:
            goal = targets.get(f"{label}.{metric}")
            mark = "" if not goal else ("met" if goal["passed"] else "missed") + f" ({goal['target']})"
            bad = (label, metric) in regressed
            cells = [label, row["n"], metric, *(cell(row[t].get(metric)) for t in tags), mark]
            tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            body.append(f"<tr class='regressed'>{tds}</tr>" if bad else f"<tr>{tds}</tr>")
    out = f'<table class="eval"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    verdicts = [
        [tag, r["label"], r["verdict"], ", ".join(r["regressed_on"])]
        for tag, rows in report.get("comparisons", {}).items()
        for r in rows
    ]
    out += "<h3>Trained against each baseline</h3>" + _table(["versus", "kind", "verdict", "regressed on"], verdicts)
    lines = [
        f"{r['label']} {r['metric']} {r['baseline']:.2f} → {r['trained']:.2f} versus {r['versus']} "
        f"(difference {r['difference']:+.2f}, 95% [{r['low']:+.2f}, {r['high']:+.2f}])"
        for r in report.get("regressions", [])
    ]
    out += "<h3>Regressions</h3>" + (
        "<ul class='regressions'>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>"
        if lines
        else "<p>None: no failure mode rose beyond the tolerance with its interval above zero.</p>"
    )
    for problem in report.get("integrity", {}).get("problems", []):
        out += f"<p class='regressed'>eval integrity: {html.escape(problem)}</p>"
    return out


def shortcut_section(audit: dict[str, Any]) -> str:
    """The give-away n-grams, and the policy frames only one kind uses (curate.shortcuts)."""
    from curate.shortcuts import warning

    t = audit["thresholds"]
    line = warning(audit) or "Clean: no give-away n-gram, and every policy frame is used by two kinds or more."
    parts = [f"<p>{html.escape(line)}</p>",
             f"<p>Training prompts (last user turn) of {', '.join(audit['kinds'])}; an n-gram is listed when at least "
             f"{t['min_precision']:.0%} of the prompts containing it are of one kind, in at least {t['min_support']} "
             "of them, and its words carry no content of the policy or the cited documents.</p>"]  # fmt: skip
    if audit["giveaways"]:
        keys = ("kind", "ngram", "support", "prompts")
        rows = [[*(r[k] for k in keys), f"{r['precision']:.2f}"] for r in audit["giveaways"]]
        parts.append(_table(["kind", "give-away", "support", "prompts with it", "precision"], rows, "shortcuts"))
    alone = [[f["kind"], f["frame"], f["train"]] for f in audit["frames"] if not f["other_kinds"]]
    if alone:
        parts.append(_table(["kind", "policy frame used by this kind only", "train prompts"], alone, "frames"))
    return "".join(parts)


def _example_rows(examples: list[dict], documents: dict[str, dict]) -> list[dict]:
    out = []
    for e in examples:
        meta = json.loads(e.get("meta") or "{}")
        source_docs = [documents[s] for s in e["source_ids"] if s in documents]
        labels = sorted(
            {
                f"{k}={v}"
                for d in source_docs
                for k, v in json.loads(d.get("labels") or "{}").items()
                if isinstance(v, (str, bool))  # label.llm's labels are an object: shown on the documents
            }
        )
        judge = meta.get("judge")
        out.append(
            {
                "id": e["id"],
                "split": e["split"],
                "kind": e["kind"],
                "messages": e["messages"],
                "source": ", ".join(sorted({d["source"] for d in source_docs})) or "(no source document)",
                "section": meta.get("section") or "",
                "template": e["template"],
                "generator": e["generator"],
                "group": e["group"],
                "labels": labels,
                "judge": f"{'faithful' if judge.get('faithful') else 'not faithful'}: {judge.get('evidence', '')}"
                if judge
                else "",
                "meta": {k: v for k, v in meta.items() if k not in ("section", "judge")},
            }
        )
    return out


def build_report(path: Path, links_from: Path | None = None) -> str:
    """The report's HTML; ``links_from`` is the folder it will be written to (file links are relative to it)."""
    dataset_dir = check_dataset_dir(path)
    layout = RunLayout.of(dataset_dir)
    stats = json.loads((dataset_dir / "stats.json").read_text(encoding="utf-8"))
    examples = [{**e, "split": "train"} for e in read_jsonl(dataset_dir / "train.jsonl")]
    examples += [{**e, "split": "test"} for e in read_jsonl(dataset_dir / "test.jsonl")]
    documents = read_jsonl(dataset_dir / "documents" / "documents.jsonl")
    rejects = read_jsonl(dataset_dir / "rejects" / "rejects.jsonl")
    card = (dataset_dir / "README.md").read_text(encoding="utf-8") if (dataset_dir / "README.md").is_file() else ""
    summary_path = layout.training_summary
    training = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    eval_path = layout.eval / "eval.json"
    evaluation = json.loads(eval_path.read_text()) if eval_path.is_file() else None
    charts = _charts(stats, examples, documents, (training or {}).get("loss_curve") or [])

    sections = []
    ex = stats["examples"]
    overview = [
        ["input files", stats["input"]["files"]],
        ["documents read", stats["input"]["documents"]],
        ["document rows kept", stats["documents"]["rows"]],
        ["examples (train / test)", f"{ex['total']['train']} / {ex['total']['test']}"],
        ["rejected", stats["rejects"]["total"]],
    ]
    sections.append(("Overview", _table(["", ""], overview, "narrow")))
    funnel = [
        [s["step"], s["rows_in"], s["rows_out"], sum(s["rejected"].values()),
         ", ".join(f"{k}: {v}" for k, v in sorted(s["rejected"].items()))]
        for s in stats["steps"]
    ]  # fmt: skip
    sections.append(
        (
            "Curation funnel",
            _table(["step", "rows in", "rows out", "dropped", "reasons"], funnel, "funnel")
            + charts["funnel"]
            + charts.get("reasons", ""),
        )
    )
    kinds = [[k, ex["train"].get(k, 0), ex["test"].get(k, 0)] for k in sorted(set(ex["train"]) | set(ex["test"]))]
    sections.append(("Examples by kind", _table(["kind", "train", "test"], kinds, "kinds") + charts["kinds"]))
    if "shortcuts" in stats:
        sections.append(("Shortcut audit", shortcut_section(stats["shortcuts"])))
    sections.append(("Lengths", charts["lengths"]))
    if "labels" in charts:
        sections.append(("Document labels", charts["labels"]))
    sections.append(("Example browser", EXAMPLE_BROWSER))
    sections.append(("Rejects", REJECT_BROWSER))
    if training:
        parts = charts.get("loss", "")
        parts += _table(["", ""], [[k, v] for k, v in training.get("preflight", [])], "narrow")
        final_loss = (training.get("loss_curve") or [{}])[-1].get("loss", "")
        facts = [["steps", training["steps"]], ["wall seconds", training["wall_seconds"]],
                 ["final loss", final_loss], ["model", training["model"]]]  # fmt: skip
        sections.append(("Training", _table(["", ""], facts, "narrow") + parts))
        if training.get("preference"):
            sections.append(("Preference tuning", preference_section(training["preference"])))
    else:
        sections.append(
            ("Training", f"<p>No training summary at {html.escape(str(summary_path))}: not trained yet.</p>")
        )
    if not evaluation:
        sections.append(("Evaluation", f"<p>No evaluation at {html.escape(str(eval_path))}: not evaluated yet.</p>"))
    else:
        sections.append(("Evaluation", evaluation_section(evaluation)))
    exported = export_section(layout.root, links_from or layout.report.parent)
    if exported:
        sections.append(("Exports", exported))
    sections.append(("Dataset card", f"<pre class='card'>{html.escape(card)}</pre>"))

    by_id = {d["id"]: d for d in documents}
    data = {
        "examples": _example_rows(examples, by_id),
        "rejects": [{k: r.get(k, "") for k in ("id", "source", "stage", "reason", "detail")} for r in rejects],
    }
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")

    def anchor(title: str) -> str:  # prefixed: never the id of an element the scripts look up
        return "s-" + title.lower().replace(" ", "-")

    body = "".join(
        f'<section id="{anchor(title)}"><h2>{html.escape(title)}</h2>{content}</section>'
        for title, content in sections
    )
    nav = " · ".join(f'<a href="#{anchor(title)}">{html.escape(title)}</a>' for title, _ in sections)
    title = html.escape(f"gristmill report: {stats.get('recipe', dataset_dir.name)}")
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
        f"<body><h1>{title}</h1><nav>{nav}</nav>{body}"
        f'<script type="application/json" id="data">{payload}</script><script>{JS}</script></body></html>'
    )


def export_section(run_dir: Path, links_from: Path) -> str:
    """Links to what ``gristmill export`` wrote (export/export.json), with sizes; '' when nothing was exported."""
    try:
        summary = json.loads((run_dir / "export" / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    rows = []
    for fmt, rel in [*summary.get("files", {}).items(), ("model card", "README.md")]:
        href = html.escape(Path(os.path.relpath(run_dir / "export" / rel, links_from)).as_posix())
        size = summary.get("sizes_mb", {}).get(fmt)
        rows.append([fmt, f'<a href="{href}">{html.escape(rel)}</a>', f"{size:.1f} MB" if size is not None else ""])
    head = ["format", "file", "size"]
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)  # cells hold links
    table = f"<table class='narrow'><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
    ends = html.escape(", ".join(summary.get("end_tokens", [])))
    return table + f"<p>GGUF type {html.escape(summary.get('quant', ''))}; end tokens {ends}.</p>"


def write_report(path: Path, output: Path) -> Path:
    text = build_report(path, output.parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    return output


EXAMPLE_BROWSER = """
<div class="filters">
  <input id="q" type="search" placeholder="search text, ids, templates">
  <select id="kind"><option value="">every kind</option></select>
  <select id="source"><option value="">every source</option></select>
  <select id="label"><option value="">every label</option></select>
  <select id="split"><option value="">train and test</option><option>train</option><option>test</option></select>
  <span id="count"></span>
</div>
<div id="examples"></div>
<button id="more">show more</button>
"""

REJECT_BROWSER = """
<div class="filters">
  <input id="rq" type="search" placeholder="search rejects">
  <select id="reason"><option value="">every reason</option></select>
  <span id="rcount"></span>
</div>
<table class="rejects"><thead><tr><th>stage</th><th>reason</th><th>id</th><th>source</th><th>detail</th></tr></thead>
<tbody id="rejects"></tbody></table>
"""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:1em;color:#222}
nav{margin-bottom:1em}nav a{color:#36a}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;
vertical-align:top}th{background:#f4f4f4}svg{max-width:100%;height:auto;display:block;margin:.5em 0}
.filters{display:flex;gap:.5em;flex-wrap:wrap;margin:.5em 0}.ex{border:1px solid #ddd;border-radius:6px;
margin:.6em 0;padding:.5em .8em}.prov{color:#666;font-size:12px}.msg{margin:.3em 0;padding:.4em .6em;
border-radius:6px;white-space:pre-wrap}.system{background:#f3f3f3}.user{background:#e8f0fb}
.assistant{background:#eaf6e6}.role{font-weight:600;font-size:11px;text-transform:uppercase;color:#555}
.card{white-space:pre-wrap;background:#fafafa;padding:1em;border:1px solid #eee}.rejects td{font-size:12px}
.regressed,.regressed td{color:#b00020;font-weight:600}.regressions li{color:#b00020}
"""

JS = """
(function(){
const data = JSON.parse(document.getElementById('data').textContent);
const $ = id => document.getElementById(id);
function el(tag, cls, text){const e=document.createElement(tag); if(cls) e.className=cls;
  if(text!==undefined) e.textContent=text; return e;}
function fill(select, values){[...new Set(values)].sort().forEach(v=>{const o=el('option','',v); o.value=v;
  select.appendChild(o);});}
fill($('kind'), data.examples.map(e=>e.kind));
fill($('source'), data.examples.map(e=>e.source));
fill($('label'), data.examples.flatMap(e=>e.labels));
fill($('reason'), data.rejects.map(r=>r.reason.split(':')[0]));
let shown = 50;
function matches(e){
  const q=$('q').value.toLowerCase();
  if($('kind').value && e.kind!==$('kind').value) return false;
  if($('source').value && e.source!==$('source').value) return false;
  if($('label').value && !e.labels.includes($('label').value)) return false;
  if($('split').value && e.split!==$('split').value) return false;
  if(q){const hay=(e.id+' '+e.template+' '+e.messages.map(m=>m.content).join(' ')).toLowerCase();
    if(!hay.includes(q)) return false;}
  return true;}
function renderExamples(){
  const box=$('examples'); box.replaceChildren();
  const hits=data.examples.filter(matches);
  $('count').textContent=hits.length+' of '+data.examples.length+' examples';
  hits.slice(0, shown).forEach(e=>{
    const card=el('div','ex'); card.dataset.kind=e.kind;
    card.appendChild(el('div','prov', e.kind+' · '+e.split+' · '+e.id+' · source: '+e.source+
      (e.section?' › '+e.section:'')+' · template '+e.template+' · generator '+e.generator+
      (e.judge?' · judge: '+e.judge:'')));
    e.messages.forEach(m=>{const d=el('div','msg '+m.role); d.appendChild(el('div','role',m.role));
      d.appendChild(document.createTextNode(m.content)); card.appendChild(d);});
    box.appendChild(card);});
  $('more').style.display = hits.length>shown ? '' : 'none';}
function renderRejects(){
  const body=$('rejects'); body.replaceChildren(); const q=$('rq').value.toLowerCase();
  const hits=data.rejects.filter(r=>(!$('reason').value || r.reason.split(':')[0]===$('reason').value) &&
    (!q || (r.id+' '+r.source+' '+r.reason+' '+r.detail).toLowerCase().includes(q)));
  $('rcount').textContent=hits.length+' of '+data.rejects.length+' rejects';
  hits.slice(0,500).forEach(r=>{const tr=el('tr'); ['stage','reason','id','source','detail'].forEach(k=>
    tr.appendChild(el('td','',String(r[k])))); body.appendChild(tr);});}
['q','kind','source','label','split'].forEach(id=>$(id).addEventListener('input',()=>{shown=50;renderExamples();}));
['rq','reason'].forEach(id=>$(id).addEventListener('input',renderRejects));
$('more').addEventListener('click',()=>{shown+=50;renderExamples();});
new URLSearchParams(location.hash.slice(1)).forEach((v,k)=>{const s=$(k); if(s){s.value=v;}});
renderExamples(); renderRejects();
})();
"""
