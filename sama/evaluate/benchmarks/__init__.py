"""Benchmark runners: each turns a benchmark folder into questions + references, scores a prediction JSONL (or
produces it first with a ``Predictor``) and writes the report.

- ``base``: ``BenchQuestion`` / ``Reference`` / ``Bench``, the ``Predictor`` protocol, ``OraclePredictor`` and
  ``PerturbedPredictor``, the model hook (``sama.model.adapter.load_predictor``) and the resumable prediction loop;
- ``runner``: predict (sharded, resumable) → read → validate, shared by every runner;
- ``sama_bench_g``, ``sama_bench_c``, ``rvos`` (MeViS, ReVOS, Ref-DAVIS17, Ref-YTVOS submission).
"""
