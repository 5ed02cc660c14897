"""Analysis and evaluation: blockwise connected components, object tables, metrics.

* :mod:`.components` -- connected components blockwise, identical to cc3d on the whole volume;
* :mod:`.objects` -- the object table, filters (size, within, per parent), per-parent statistics;
* :mod:`.report` -- tables (Parquet, CSV), plots (PNG) and a self-contained HTML report;
* :mod:`.metrics` -- semantic and instance scores of a prediction against ground truth;
* :mod:`.run` -- ``curate analyze``: all of the above on a label version, stored in the archive
  (an instance label version, ``analysis/analysis-N/``, a run record) in one write transaction;
* :mod:`.evaluate` -- ``curate evaluate``: a prediction scored against ground truth, stored alike;
* :mod:`.store` -- where analysis runs go in an acquisition and how they are committed;
* :mod:`.steps` -- the pipeline step kinds ``analyze`` and ``evaluate``.

Submodules import their heavy dependencies themselves; importing this package is cheap.
"""
