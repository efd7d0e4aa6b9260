"""Analysis of tc runs: run directories -> pandas tables -> the papers' figures and report.

    from tc.analysis import load, studies
    results = load.load("runs/results/cpu")        # .runs, .epochs, .trials, .problems
    table = load.over_seeds(studies.paper2_sweep(results.runs), ["beta"], ["final/test/ece"])

- `load`: any mix of run and tuner directories into tidy DataFrames; broken runs are reported,
  never raised.
- `studies`: which runs belong to which paper's experiment, from their flags.
- `figures`: the papers' figures (PNG).
- `claims`: each claim of the papers judged on the runs, with the numbers.
- `report`: `python -m tc.analysis.report --runs DIR --out DIR`, all of the above as REPORT.md.
"""
