"""`python -m core report`: rewrite the tables of docs/results.md from the records under docs/records/.

    python -m core report            # rewrite the blocks and the cited prose numbers in place
    python -m core report --check    # exit 1 if the doc does not match its records (a table, or a prose number
                                     # with a citation: core/fewshot/claims.py) or if a prose number carries
                                     # neither a citation nor a named exception (`<!-- nocite: REASON -->`)
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="regenerate the results doc's tables from committed records",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--doc", default="docs/results.md")
    p.add_argument("--tables", default="docs/tables.json")
    p.add_argument("--records", default="docs/records", help="folder the tables' record patterns are relative to")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when the doc differs")


def run(args) -> int:
    from core.fewshot.claims import CITE, exceptions, uncited
    from core.fewshot.tables import regenerate_checked

    doc = Path(args.doc)
    new, prose = regenerate_checked(doc, Path(args.tables), Path(args.records))
    n_cited, missing, named = len(CITE.findall(new)), uncited(new), exceptions(new)
    named_text = ", ".join(f"{why} {n}" for why, n in sorted(named.items())) or "none"
    if args.check:
        if new != doc.read_text():
            for problem in prose:               # a prose number that disagrees with its table, by line
                print(f"{doc} {problem}", file=sys.stderr)
            print(f"{doc} does not match its records; run `python -m core report`", file=sys.stderr)
            return 1
        if missing:
            for line, number in missing:
                print(f"{doc} line {line}: {number} cites no table", file=sys.stderr)
            print(f"{doc}: cite each number's table (<!-- cite TABLE | COLUMN | ROW [| FIELD] -->) or name why it "
                  "has none (<!-- nocite: REASON -->, core/fewshot/claims.py)", file=sys.stderr)
            return 1
        print(f"{doc} matches its records ({n_cited} prose numbers cited and checked; not from a table: "
              f"{named_text})")
        return 0
    doc.write_text(new)
    print(f"rewrote the tables and {n_cited} cited prose numbers of {doc} ({len(prose)} changed; "
          f"{len(missing)} numbers cite no table)")
    return 0
