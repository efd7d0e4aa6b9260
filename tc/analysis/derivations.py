"""The five derivations of docs/PAPERS.md checked numerically, each in one place: its paper, the
statement, the parameters it is computed with, the rule that judges it, and the evidence text.

These check formulas derived from the papers (with `tc.theory`), not the papers' empirical
claims; the report lists them apart from those. The evidence text is written from the same
constants the computation uses, so the two cannot disagree.
"""

import dataclasses

import numpy as np

from tc import theory

P1 = "1. Temperature check"
P2 = "2. Gradient decay"
P3 = "3. Unpacking softmax"

REPARAMETRIZATION_BETAS = (0.01, 0.1, 10.0)
REPARAMETRIZATION_MOMENTA = (0.0, 0.9)
REPARAMETRIZATION_STEPS = 100
REPARAMETRIZATION_TOLERANCE = 1e-10
CURVATURE_BETAS = tuple(float(b) for b in np.geomspace(1e-2, 10.0, 7))
CURVATURE_WIDTHS = (1024, 16)
CURVATURE_TOLERANCE = 0.2
TIME_FLAT_NORMS = (1e-2, 1e-1, 1.0)
TIME_GROWING_NORMS = (10.0, 100.0)
TIME_SEEDS = 3
TIME_FLAT_RATIO = 1.25
TIME_GROWTH_SLOPE = 0.75
G_BETAS = (0.1, 0.5, 2.0, 10.0)
SPECTRUM_TEMPERATURES = tuple(float(t) for t in np.geomspace(10.0, 1000.0, 5))
SPECTRUM_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class Check:
    paper: str
    statement: str
    holds: bool
    evidence: str
    rule: str


def _values(values):
    return ", ".join(f"{value:g}" for value in values)


def reparametrization():
    gap = max(theory.reparametrization_gap(beta, steps=REPARAMETRIZATION_STEPS,
                                           momentum=momentum)
              for beta in REPARAMETRIZATION_BETAS for momentum in REPARAMETRIZATION_MOMENTA)
    return Check(P1, "Reparametrization: SGD on softmax(beta W h) at rate eta equals SGD on "
                     "softmax(W' h), W' = beta W, readout rate eta beta^2.",
                 gap < REPARAMETRIZATION_TOLERANCE,
                 f"largest relative gap over {REPARAMETRIZATION_STEPS} steps, beta in "
                 f"{{{_values(REPARAMETRIZATION_BETAS)}}}, momentum in "
                 f"{{{_values(REPARAMETRIZATION_MOMENTA)}}}: {gap:.1e}",
                 f"holds if below {REPARAMETRIZATION_TOLERANCE:g} (float64 2-layer net)")


def curvature():
    wide, narrow = (theory.log_log_slope(CURVATURE_BETAS, [
        theory.max_stable_learning_rate(beta, width=width, iterations=100 if width > 100 else 300)
        for beta in CURVATURE_BETAS]) for width in CURVATURE_WIDTHS)
    return Check(P1, "Curvature: the largest stable SGD rate scales as beta^-2 at small "
                     "||beta z0||.",
                 abs(wide + 2) <= CURVATURE_TOLERANCE,
                 f"log-log slope of 2/lambda_max vs beta over [{CURVATURE_BETAS[0]:g}, "
                 f"{CURVATURE_BETAS[-1]:g}] ({len(CURVATURE_BETAS)} points): {wide:.3f} at "
                 f"width {CURVATURE_WIDTHS[0]}; {narrow:.3f} at width {CURVATURE_WIDTHS[1]}",
                 f"holds if the width-{CURVATURE_WIDTHS[0]} slope is within "
                 f"{CURVATURE_TOLERANCE:g} of -2")


def time_to_learn():
    def mean_steps(norm):
        return float(np.mean([theory.steps_to_accuracy(norm, seed=seed)
                              for seed in range(TIME_SEEDS)]))

    flat = [mean_steps(norm) for norm in TIME_FLAT_NORMS]
    growing = [mean_steps(norm) for norm in TIME_GROWING_NORMS]
    ratio = max(flat) / min(flat)
    slope = theory.log_log_slope(TIME_GROWING_NORMS, growing)
    return Check(P1, "Time to learn (linear model): flat in ||beta z0|| below 1, growing above.",
                 ratio < TIME_FLAT_RATIO and slope > TIME_GROWTH_SLOPE,
                 f"steps to 90% train accuracy (mean of {TIME_SEEDS} seeds) at ||beta z0|| = "
                 f"{_values(TIME_FLAT_NORMS)}: {[round(s, 1) for s in flat]}; at "
                 f"{_values(TIME_GROWING_NORMS)}: {[round(s, 1) for s in growing]} "
                 f"(log-log slope {slope:.2f})",
                 f"holds if max/min up to 1 is < {TIME_FLAT_RATIO:g} and the slope above is > "
                 f"{TIME_GROWTH_SLOPE:g}")


def gradient_decay_shape():
    p = np.linspace(0.01, 0.99, 99)
    signs = {}
    for beta in G_BETAS:
        distinct = np.unique(np.sign(theory.gradient_decay_g_second_derivative(p, beta)))
        signs[f"{beta:g}"] = int(distinct[0]) if len(distinct) == 1 else 0  # 0: it changes
    holds = all((sign < 0) if float(beta) < 1 else (sign > 0) for beta, sign in signs.items())
    return Check(P2, "g(p) = (1-p)/(1+(beta-1)p) is concave for beta < 1 and convex for "
                     "beta > 1.", holds,
                 f"sign of g'' on p in [0.01, 0.99] for beta in {{{_values(G_BETAS)}}}: {signs}",
                 "holds if g'' < 0 for every beta < 1 and > 0 for every beta > 1")


def softmax_spectrum():
    logits = 3.0 * np.random.default_rng(0).standard_normal((200, 10))
    slope = theory.log_log_slope(SPECTRUM_TEMPERATURES, [
        theory.softmax_spectrum_ratio(logits, temperature)
        for temperature in SPECTRUM_TEMPERATURES])
    return Check(P3, "sigma_2 / sigma_1 of softmax(Z / T) falls like 1 / T.",
                 abs(slope + 1) <= SPECTRUM_TOLERANCE,
                 f"log-log slope over T in [{SPECTRUM_TEMPERATURES[0]:g}, "
                 f"{SPECTRUM_TEMPERATURES[-1]:g}] (200 x 10 Gaussian logits, scale 3): "
                 f"{slope:.3f}",
                 f"holds if within {SPECTRUM_TOLERANCE:g} of -1")


CHECKS = (reparametrization, curvature, time_to_learn, gradient_decay_shape, softmax_spectrum)


def run_all():
    """Every check, computed now: `{name: Check}` in the order of CHECKS."""
    return {check.__name__: check() for check in CHECKS}
