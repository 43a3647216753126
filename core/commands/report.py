"""`python -m core report`: rewrite the tables of docs/results.md from the records under docs/records/.

    python -m core report            # rewrite the blocks in place
    python -m core report --check    # exit 1 if the doc does not match its records
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
    from core.fewshot.tables import regenerate

    doc = Path(args.doc)
    new = regenerate(doc, Path(args.tables), Path(args.records))
    if args.check:
        if new != doc.read_text():
            print(f"{doc} does not match its records; run `python -m core report`", file=sys.stderr)
            return 1
        print(f"{doc} matches its records")
        return 0
    doc.write_text(new)
    print(f"rewrote the tables of {doc}")
    return 0
