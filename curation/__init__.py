"""curation: a data-curation repository and FAIR archive manager for volume EM."""

__version__ = "0.1.0"
