"""reports/index.html: the study report a researcher opens first.

One static page, no script and nothing fetched from the network: per family, the
findings in numbers, the runs' settings and final metrics, the comparison figures
(each once) and a link to every figure of every run. Written by
:func:`modelcollapse.report.write_report` beside report.md, from the same numbers.
Deterministic (no timestamps).
"""

from __future__ import annotations

import html
import posixpath
import re

from modelcollapse.plots import safe_name

HTML_NAME = "index.html"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em;
     margin-top: 2em; }
table { border-collapse: collapse; font-size: .9em; margin: .8em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f4f4f6; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
ul.findings li { margin: .25em 0; }
details { margin: .3em 0; } details ul { columns: 3; font-size: .9em; }
code { background: #f4f4f6; padding: 0 .2em; border-radius: 3px; }
nav a { margin-right: 1em; }
"""

INTRO = """
<p>Each run trains a model on data, samples a synthetic data set from it, trains the
next generation on a training set composed by the run's <em>regime</em>, and so on
(Shumailov et al., <em>The Curse of Recursion</em>, 2023). Every metric compares a
generation with the human data: with the known true distribution for the statistical
families, with held-out human test data and the generation-0 model for the neural
families on real text and digits. Regimes: <code>replace</code> trains on the previous
model's samples; <code>mix</code> and <code>fresh</code> replace a share of them by
human rows (drawn afresh, or never used before); <code>accumulate</code> keeps every
human and synthetic row so far; <code>accumulate_subsample</code> draws N rows from
that pool.</p>
<p>Findings give each run's first key metric at generation 0 and at its last
generation (the ensemble mean over K independent chains where the run has them) and
the factor between them. Figures draw the ensemble mean ± 2 standard errors, the
single chain dashed. The lineage of every artifact: <a href="lineage.md">lineage.md</a>;
the same report as Markdown: <a href="report.md">report.md</a>.</p>
"""


def _code(text: str) -> str:
    """Markdown-style `code` spans of a finding as HTML (the rest escaped)."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(
        f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts)
    )


def _anchor(name: str) -> str:
    return "f-" + safe_name(name)


class HtmlPage:
    """The page, section by section, in the order the report writes them."""

    def __init__(self) -> None:
        self.body: list[str] = []
        self.sections: list[str] = []

    def heading(self, title: str) -> None:
        self.sections.append(title)
        self.body.append(f'<h2 id="{_anchor(title)}">{html.escape(title)}</h2>')

    def family(
        self,
        family: str,
        findings: list[str],
        header: list[str],
        rows: list[list[str]],
        figures: dict[str, list[str]],
    ) -> None:
        """A family's findings, its run table, and each run's figures as links."""
        self.heading(family)
        if findings:
            items = "".join(f"<li>{_code(f)}</li>" for f in findings)
            self.body.append(f'<ul class="findings">{items}</ul>')
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        lines = [f"<table><tr>{head}</tr>"]
        for cells in rows:
            first = f"<td><code>{html.escape(cells[0])}</code></td>"
            rest = "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:])
            lines.append(f"<tr>{first}{rest}</tr>")
        lines.append("</table>")
        self.body.append("".join(lines))
        for run, paths in figures.items():
            if not paths:
                continue
            links = "".join(
                f'<li><a href="{html.escape(p)}">{html.escape(posixpath.basename(p))}</a></li>'
                for p in paths
            )
            self.body.append(
                f"<details><summary>figures of <code>{html.escape(run)}</code> "
                f"({len(paths)})</summary><ul>{links}</ul></details>"
            )

    def figure(self, title: str, image: str, runs: list[str]) -> None:
        names = ", ".join(f"<code>{html.escape(r)}</code>" for r in runs)
        caption = f"{html.escape(title)}: {names}"
        self.body.append(
            f'<figure><img src="{html.escape(image)}" alt="{html.escape(title)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )

    def text(self) -> str:
        nav = "".join(f'<a href="#{_anchor(s)}">{html.escape(s)}</a>' for s in self.sections)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            "<title>Model collapse: report</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head>\n<body>\n"
            "<h1>Model collapse: report</h1>\n"
            f"<nav>{nav}</nav>\n{INTRO}\n" + "\n".join(self.body) + "\n</body></html>\n"
        )
