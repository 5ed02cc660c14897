"""Label layers: volunteer annotations, their consensus, and versioned label storage."""

# Entry points, imported lazily so that `import curation.labels` stays light.
_LAZY = {
    "import_labels": "importer",
    "list_labels": "layers",
    "show_labels": "layers",
    "read_label_version": "layers",
    "parse_address": "layers",
    "diff_labels": "diff",
    "aggregate_labels": "aggregation",
    "write_label_version": "store",
    "PlaneSource": "store",
    "WriteOptions": "store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
