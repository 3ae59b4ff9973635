"""The paper's evaluation protocol: `protocol` computes FID, precision/recall and PMS/IMS of any
generator and reconstructor (Inception features from flexae.metrics); `run` applies it to a
trained run folder (`flexae eval RUN_DIR`) and writes eval.json / eval.md there."""

from flexae.evaluation.protocol import METRICS, evaluate_generator, results_markdown

__all__ = ["METRICS", "evaluate_generator", "results_markdown"]
