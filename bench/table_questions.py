"""Questions whose answers are table cells: how `qa ask` and `qa search` do on a Word report's tables.

    .venv/bin/python bench/table_questions.py                  # prints the results, writes nothing
    .venv/bin/python bench/table_questions.py --out bench/results/table_questions.json
    .venv/bin/python bench/table_questions.py --html               # the report as an HTML page
    .venv/bin/python bench/table_questions.py --grouped            # the HTML page's table of two header rows

What is measured how (printed with the results too):

* Corpus, written by the script itself: ``rapport.docx`` (python-docx), a streaming company's annual
  report in French: seven paragraphs of prose and two tables, "Année | Budget contenu | Abonnés |
  Chiffre d'affaires" (10 data rows, its first row marked as a repeated header, ``w:tblHeader``) and
  "Pays | Lancement | Abonnés | Prix mensuel" (8 data rows, no header mark: the first row is its
  header); with --html, ``rapport.html``, the same text as a page (``<h1>``, ``<h2>``, ``<p>``), the
  first table's header row of ``<th>`` in a ``<thead>``, the second's of ``<td>``; beside it three .txt files of related prose, so that search has passages to rank.
  None of the prose holds an answer. With --grouped, the HTML page has a third table, "Genre" over
  "Films" and "Séries" each spanning "2023 | 2024" (two header rows of ``<th>``, no ``<thead>``:
  ``rowspan`` and ``colspan``), and the questions are the 12 on it (``GROUPED_QUESTIONS``), whose
  answers need both header rows (films or series, and the year).
* `qa index` into a fresh ``QA_DATA_DIR`` with the shipped models (default settings: chunks of 200
  tokens), then each question through ``qa ask - --json`` (hybrid retrieval, top 5 passages) and
  ``qa search --json`` (hybrid, top 10).
* Answer: the first answer's text, compared with the cell after lower-casing and collapsing spaces:
  "exact" when equal, "contains" when the answer holds the cell (a longer span, say with the column's
  name); in the top 3 answers, either.
* Search: the rank of the first passage holding the row's key cell and the answer cell, both
  (the row, whatever form the table's text takes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROSE = [
    ("Rapport annuel 2024 de Cinévia", "Title"),
    ("Cinévia est un service de vidéo à la demande par abonnement fondé à Lyon. Depuis son lancement, "
     "la société a fait le choix de financer elle-même une part croissante des films et des séries "
     "qu’elle diffuse, plutôt que d’acheter des droits de diffusion à des studios extérieurs.", None),
    ("Stratégie de contenu", "Heading 1"),
    ("Le budget consacré aux contenus couvre les productions originales, les coproductions et les "
     "licences. Les productions originales représentent désormais plus de la moitié des dépenses, et la "
     "société prévoit de maintenir cet effort dans les prochaines années malgré la hausse des coûts de "
     "tournage.", None),
    ("Le tableau suivant retrace l’évolution du budget, du nombre d’abonnés payants en fin d’année et "
     "du chiffre d’affaires annuel depuis 2015.", None),
    ("Présence internationale", "Heading 1"),
    ("Après la France, Cinévia s’est étendue à de nombreux marchés. Chaque lancement a été précédé de "
     "la négociation de catalogues locaux et du doublage des séries les plus regardées. Les prix sont "
     "fixés pays par pays en fonction du pouvoir d’achat et de la concurrence locale.", None),
    ("Perspectives", "Heading 1"),
    ("La direction entend poursuivre sa croissance en Asie et en Amérique latine, où la progression "
     "du nombre d’abonnés reste la plus forte, tout en améliorant la rentabilité des marchés européens. "
     "Une offre moins chère financée par la publicité doit être proposée dans plusieurs pays.", None),
]
YEARS = [
    ["Année", "Budget contenu", "Abonnés", "Chiffre d’affaires"],
    ["2015", "2,5 milliards", "71 millions", "6,8 milliards"],
    ["2016", "5 milliards", "89 millions", "8,8 milliards"],
    ["2017", "6 milliards", "110 millions", "11,7 milliards"],
    ["2018", "8 milliards", "139 millions", "15,8 milliards"],
    ["2019", "12 milliards", "167 millions", "20,2 milliards"],
    ["2020", "11,8 milliards", "204 millions", "25 milliards"],
    ["2021", "17 milliards", "222 millions", "29,7 milliards"],
    ["2022", "16,5 milliards", "231 millions", "31,6 milliards"],
    ["2023", "13 milliards", "260 millions", "33,7 milliards"],
    ["2024", "15,5 milliards", "302 millions", "39 milliards"],
]
COUNTRIES = [
    ["Pays", "Lancement", "Abonnés", "Prix mensuel"],
    ["France", "septembre 2014", "10 millions", "13,49 €"],
    ["Allemagne", "mars 2015", "14 millions", "12,99 €"],
    ["Japon", "septembre 2015", "6 millions", "1 490 yens"],
    ["Brésil", "novembre 2016", "19 millions", "39,90 réais"],
    ["Canada", "juin 2017", "8 millions", "16,49 dollars canadiens"],
    ["Inde", "janvier 2018", "5 millions", "199 roupies"],
    ["Italie", "octobre 2018", "5,5 millions", "12,99 €"],
    ["Mexique", "avril 2019", "11 millions", "219 pesos"],
]
OTHERS = {
    "marche.txt": "Le marché de la vidéo à la demande\n\nEn Europe, la vidéo à la demande par abonnement "
    "a dépassé la télévision payante en nombre de foyers. Les plateformes se disputent les droits sportifs "
    "et les séries à succès, et les budgets de production ont fortement augmenté. Les abonnés résilient "
    "plus souvent qu’avant et passent d’un service à l’autre selon les sorties du mois.",
    "cinema.txt": "Les salles de cinéma face au streaming\n\nLa fréquentation des salles a reculé pendant la "
    "pandémie, puis est remontée sans retrouver son niveau d’avant. Les exploitants reprochent aux "
    "plateformes de réduire la fenêtre de sortie des films et demandent que la chronologie des médias "
    "soit respectée. Les distributeurs indépendants cherchent de nouveaux modèles de financement.",
    "prix.txt": "La hausse des prix des abonnements\n\nLes services de streaming ont augmenté leurs tarifs "
    "plusieurs fois ces dernières années, invoquant le coût des contenus. Les associations de "
    "consommateurs dénoncent le partage de compte devenu payant et la multiplication des offres "
    "avec publicité, tandis que les abonnés comparent les prix d’un pays à l’autre.",
}
# a table of two header rows (--grouped): "Genre" spans both, "Films" and "Séries" each span two years
GENRES_HEAD = ["Genre", "Films", "Séries"]
GENRES_YEARS = ["2023", "2024"]
GENRES = [
    ["Drame", "14", "18", "9", "12"],
    ["Comédie", "21", "17", "6", "11"],
    ["Documentaire", "8", "13", "15", "19"],
    ["Animation", "5", "7", "3", "4"],
    ["Thriller", "10", "16", "22", "25"],
]
GROUPED_QUESTIONS = [
    ("Combien de séries de comédie Cinévia a-t-elle produites en 2024 ?", "11", "Comédie"),
    ("Combien de films documentaires Cinévia a-t-elle produits en 2023 ?", "8", "Documentaire"),
    ("Combien de séries de thriller Cinévia a-t-elle produites en 2023 ?", "22", "Thriller"),
    ("Combien de films d’animation Cinévia a-t-elle produits en 2024 ?", "7", "Animation"),
    ("Combien de films dramatiques Cinévia a-t-elle produits en 2024 ?", "18", "Drame"),
    ("Combien de séries documentaires Cinévia a-t-elle produites en 2024 ?", "19", "Documentaire"),
    ("Combien de films de comédie Cinévia a-t-elle produits en 2023 ?", "21", "Comédie"),
    ("Combien de séries d’animation Cinévia a-t-elle produites en 2023 ?", "3", "Animation"),
    ("Combien de films de thriller Cinévia a-t-elle produits en 2024 ?", "16", "Thriller"),
    ("Combien de séries dramatiques Cinévia a-t-elle produites en 2023 ?", "9", "Drame"),
    ("Combien de séries de thriller Cinévia a-t-elle produites en 2024 ?", "25", "Thriller"),
    ("Combien de films documentaires Cinévia a-t-elle produits en 2024 ?", "13", "Documentaire"),
]
# (question, answer cell, the row's key cell)
QUESTIONS = [
    ("Quel était le budget contenu de Cinévia en 2018 ?", "8 milliards", "2018"),
    ("Combien Cinévia comptait-elle d’abonnés en 2021 ?", "222 millions", "2021"),
    ("Quel chiffre d’affaires Cinévia a-t-elle réalisé en 2020 ?", "25 milliards", "2020"),
    ("Quel était le budget contenu en 2015 ?", "2,5 milliards", "2015"),
    ("Quel était le chiffre d’affaires de Cinévia en 2023 ?", "33,7 milliards", "2023"),
    ("En quelle année le budget contenu a-t-il atteint 17 milliards ?", "2021", "17 milliards"),
    ("Quel est le prix mensuel de l’abonnement en Allemagne ?", "12,99 €", "Allemagne"),
    ("Quand Cinévia a-t-elle été lancée au Japon ?", "septembre 2015", "Japon"),
    ("Combien Cinévia compte-t-elle d’abonnés au Brésil ?", "19 millions", "Brésil"),
    ("Combien coûte l’abonnement mensuel en Inde ?", "199 roupies", "Inde"),
    ("Quand le service a-t-il été lancé au Mexique ?", "avril 2019", "Mexique"),
    ("Combien d’abonnés Cinévia a-t-elle au Canada ?", "8 millions", "Canada"),
]


def grouped_table() -> str:
    """The --grouped table: two header rows of <th>, "Genre" spanning both, each group two years."""
    from html import escape

    first = f'<th rowspan="2">{escape(GENRES_HEAD[0])}</th>' + "".join(f'<th colspan="2">{escape(h)}</th>' for h in GENRES_HEAD[1:])
    second = "".join(f"<th>{y}</th>" for _ in GENRES_HEAD[1:] for y in GENRES_YEARS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in GENRES)
    return (f"<p>{escape(GROUPED_PROSE)}</p><table><caption>Productions originales par genre</caption>"
            f"<tr>{first}</tr><tr>{second}</tr>{body}</table>")


GROUPED_PROSE = ("Cinévia produit chaque année davantage de films et de séries originaux. Le nombre de productions "
                 "originales par genre est donné ci-dessous pour les deux derniers exercices.")


def write_html(folder: Path, grouped: bool = False) -> None:
    from html import escape

    def table(rows: list[list[str]], th: bool) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in rows[0]) if th else "".join(f"<td>{escape(c)}</td>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
        return f"<table>{'<thead>' if th else ''}<tr>{head}</tr>{'</thead>' if th else ''}<tbody>{body}</tbody></table>"

    parts = []
    for i, (text, style) in enumerate(PROSE):
        tag = {"Title": "h1", "Heading 1": "h2"}.get(style or "", "p")
        parts.append(f"<{tag}>{escape(text)}</{tag}>")
        parts.extend(table(rows, th) for after, rows, th in ((4, YEARS, True), (6, COUNTRIES, False)) if i == after)
        if grouped and i == 6:
            parts.append(grouped_table())
    page = f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{escape(PROSE[0][0])}</title></head><body><article>{''.join(parts)}</article></body></html>"
    (folder / "rapport.html").write_text(page, encoding="utf-8")
    for name, text in OTHERS.items():
        (folder / name).write_text(text, encoding="utf-8")


def write_corpus(folder: Path) -> None:
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    for i, (text, style) in enumerate(PROSE):
        document.add_paragraph(text, style=style)
        for table_after, rows, mark in ((4, YEARS, True), (6, COUNTRIES, False)):
            if i == table_after:
                grid = document.add_table(rows=len(rows), cols=len(rows[0]))
                for r, row in enumerate(rows):
                    for c, cell in enumerate(row):
                        grid.cell(r, c).text = cell
                if mark:  # Word's "Repeat as header row at the top of each page"
                    tr_pr = grid.rows[0]._tr.get_or_add_trPr()
                    tr_pr.append(OxmlElement("w:tblHeader"))
                    assert tr_pr.find(qn("w:tblHeader")) is not None
    document.save(str(folder / "rapport.docx"))
    for name, text in OTHERS.items():
        (folder / name).write_text(text, encoding="utf-8")


def norm(s: str) -> str:
    return " ".join(s.replace("\u202f", " ").replace("\xa0", " ").lower().split())


def qa(env: dict, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(REPO / ".venv/bin/qa"), *args], input=stdin, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"qa {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--show-text", action="store_true", help="print the report's text as indexed")
    ap.add_argument("--html", action="store_true", help="the report as an HTML page, not a .docx")
    ap.add_argument("--grouped", action="store_true", help="the HTML page with a table of two header rows, and the questions on it")
    args = ap.parse_args()
    questions = GROUPED_QUESTIONS if args.grouped else QUESTIONS
    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = Path(tmp, "corpus"), Path(tmp, "data")
        corpus.mkdir()
        if args.html or args.grouped:
            write_html(corpus, grouped=args.grouped)
        else:
            write_corpus(corpus)
        env = {**os.environ, "QA_DATA_DIR": str(data)}
        qa(env, "index", str(corpus))
        if args.show_text:
            print(qa(env, "docs", "show", "rapport"))
        asked = [json.loads(line) for line in qa(env, "ask", "-", "--json", stdin="\n".join(q for q, _, _ in questions) + "\n").splitlines() if line.strip()]
        rows = []
        for (question, cell, key), resp in zip(questions, asked, strict=True):
            answers = [a["text"] for a in resp.get("answers", [])]
            first = norm(answers[0]) if answers else ""
            hits = json.loads(qa(env, "search", question, "--json"))
            hits = hits.get("results", hits) if isinstance(hits, dict) else hits
            rank = next((i for i, h in enumerate(hits, 1) if norm(cell) in norm(h["text"]) and norm(key) in norm(h["text"])), None)
            rows.append({
                "question": question, "expected": cell, "answers": answers[:3],
                "exact": first == norm(cell), "contains": bool(first) and norm(cell) in first,
                "in_top3": any(norm(cell) in norm(a) for a in answers[:3]), "search_rank": rank,
            })
    n = len(rows)
    summary = {
        "questions": n,
        "first_answer_exact": sum(r["exact"] for r in rows),
        "first_answer_contains": sum(r["contains"] for r in rows),
        "answer_in_top3": sum(r["in_top3"] for r in rows),
        "search_row_at_1": sum(r["search_rank"] == 1 for r in rows),
        "search_row_in_top3": sum(r["search_rank"] is not None and r["search_rank"] <= 3 for r in rows),
        "search_mrr": round(sum(1 / r["search_rank"] for r in rows if r["search_rank"]) / n, 3),
    }
    for r in rows:
        print(f"{'=' if r['exact'] else '~' if r['contains'] else 'x'} rank {r['search_rank']}  {r['question']}  [{r['expected']}] -> {r['answers']}")
    print(json.dumps(summary, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps({"method": __doc__, "summary": summary, "questions": rows}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
