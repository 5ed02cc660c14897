"""Looking at the archive: the web catalog and slice viewer (``curate serve``), pictures
(``curate preview``, the EMPIAR entry image, the demo's front page) and painted ground
truth (``curate labels paint``).

Every read and write of the archive goes through :mod:`curation.web.catalog`, the one
adapter to re-point when the archive's read model changes. The other modules:

* :mod:`.render`   pictures from arrays (contrast, label colours, differences, PNG/WebP);
* :mod:`.tiles`    viewer tiles: level and region, a decoded-chunk cache, ETags;
* :mod:`.lineage`  the version lineage as SVG;
* :mod:`.paint`    an edit (strokes on any plane) as the next label version;
* :mod:`.preview`  thumbnails, overlays, the entry image, the demo report;
* :mod:`.views`    what pages show (metadata form, viewer config, neuroglancer state);
* :mod:`.security` host checks, CSRF, headers;
* :mod:`.app`      the Starlette routes.
"""
