"""Analysis of tc runs: run directories -> pandas tables -> the papers' figures and report.

The loaders, figures and report arrive with the entry points that write run directories
(`python -m tc.train`, `python -m tc.tune`); see the project README's roadmap.
"""
