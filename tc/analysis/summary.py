"""The verdicts of a report in short tables (SUMMARY.md, which the README shows), and the
markdown table they are written in.

    from tc.analysis import summary
    print(summary.results_summary(pandas.read_csv("runs/results/tables/claims.csv",
                                                  keep_default_na=False)))
"""

import numpy as np
import pandas as pd

from tc.analysis import claims as claims_lib

__all__ = ["markdown_table", "results_summary"]


def markdown_table(frame, digits=4):
    """`frame` as a GitHub markdown table, floats to `digits` significant digits."""
    if frame.empty:
        return "(no rows)\n"

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.{digits}g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


SUMMARY_NOTE = ("Each cell is the verdict of one claim for one model (a claim judged in parts, "
                "per layer or OOD score, reads \"mixed\" where its parts differ); the numbers, "
                "rules and notes are in REPORT.md.")


def results_summary(claim_table):
    """The verdicts as short markdown tables, one per dataset: a row per claim, a column per
    model. REPORT.md's claims table holds the numbers; this is what the README shows."""
    verdicts = claims_lib.claim_verdicts(claim_table)
    if not verdicts:
        return "No claim could be judged on these runs.\n"
    papers = dict(zip(claim_table["claim"], claim_table["paper"]))
    papers.update(zip(claim_table["family"], claim_table["paper"]))
    parts = [SUMMARY_NOTE + "\n"]
    for dataset in dict.fromkeys(dataset for dataset, _, _ in verdicts):
        models = list(dict.fromkeys(model for d, model, _ in verdicts if d == dataset))
        claims_here = list(dict.fromkeys(claim for d, _, claim in verdicts if d == dataset))
        frame = pd.DataFrame(
            [{"paper": papers.get(claim, "").split(".")[0], "claim": claim,
              **{model: verdicts.get((dataset, model, claim), "") for model in models}}
             for claim in claims_here])
        parts += [f"**{dataset}**\n", markdown_table(frame)]
    return "\n".join(parts)
