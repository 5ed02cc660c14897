"""Analysis and evaluation: blockwise connected components, object tables, metrics.

* :mod:`.components` -- connected components blockwise, identical to cc3d on the whole volume;
* :mod:`.objects` -- the object table, filters (size, within, per parent), per-parent statistics;
* :mod:`.report` -- tables (Parquet, CSV), plots (PNG) and a self-contained HTML report;
* :mod:`.metrics` -- semantic and instance scores of a prediction against ground truth.

Submodules import their heavy dependencies themselves; importing this package is cheap.
"""
