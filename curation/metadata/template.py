"""A commented YAML template of the metadata document, with hints for each technique.

Conventions of the template: a value written ``<like this>`` is a placeholder for a
required field and must be replaced (validation reports any left over); a field left
empty is optional and simply not given. The template itself parses as YAML.
"""

from __future__ import annotations

import re
from string import Template

from curation.errors import MetadataError
from curation.metadata.imaging import Technique
from curation.metadata.models import SCHEMA_VERSION

_HINTS: dict[Technique, dict[str, str]] = {
    Technique.FIB_SEM: {
        "z_hint": "milling step of the focused ion beam (FIB-SEM: typically 3-10 nm)",
        "z_example": "8",
        "xy_example": "8",
        "kv": "FIB-SEM imaging of resin-embedded tissue: typically 1-2 kV; e.g. 1.5",
        "na": "typically 0.1-2 nA; e.g. 0.8",
        "dwell": "typically 1-10 µs; e.g. 3",
        "detector": "e.g. EsB or in-lens (Zeiss), ICD, TLD or CBS (Thermo Fisher)",
        "manufacturer": "Zeiss",
        "model": "Crossbeam 540",
    },
    Technique.SBF_SEM: {
        "z_hint": "cutting step of the in-chamber diamond knife (SBF-SEM: typically 25-100 nm)",
        "z_example": "40",
        "xy_example": "6",
        "kv": "SBF-SEM: typically 1.5-3 kV (low kV limits charging and beam damage); e.g. 2.0",
        "na": "typically 0.1-1 nA; e.g. 0.2",
        "dwell": "typically 0.5-4 µs; e.g. 1.5",
        "detector": "a backscatter detector, e.g. Gatan OnPoint BSE",
        "manufacturer": "Zeiss",
        "model": "GeminiSEM 300 with Gatan 3View2XP",
    },
    Technique.ATUM_SEM: {
        "z_hint": "thickness of the serial sections collected on tape (ATUM: typically 25-50 nm)",
        "z_example": "30",
        "xy_example": "4",
        "kv": "ATUM-SEM: typically 1.5-5 kV; e.g. 3",
        "na": "typically 0.5-3 nA; e.g. 1.5",
        "dwell": "typically 0.1-2 µs; e.g. 0.4",
        "detector": "e.g. a backscatter detector or in-lens",
        "manufacturer": "Zeiss",
        "model": "Sigma",
    },
    Technique.SSTEM: {
        "z_hint": "thickness of the serial ultrathin sections (ssTEM: typically 40-70 nm)",
        "z_example": "50",
        "xy_example": "4",
        "kv": "ssTEM: typically 80-120 kV; e.g. 120",
        "na": "rarely recorded for TEM; leave empty if unknown",
        "dwell": "does not apply to a TEM camera; leave empty",
        "detector": "the camera, e.g. Gatan OneView",
        "manufacturer": "JEOL",
        "model": "JEM-1400Flash",
    },
    Technique.SEM: {
        "z_hint": "section thickness or z step, if any (a single SEM image has none)",
        "z_example": "50",
        "xy_example": "5",
        "kv": "SEM of biological samples: typically 1-5 kV; e.g. 2",
        "na": "typically 0.1-2 nA; e.g. 0.4",
        "dwell": "typically 0.5-10 µs; e.g. 2",
        "detector": "e.g. in-lens, SE2 or a backscatter detector",
        "manufacturer": "Thermo Fisher Scientific",
        "model": "Apreo 2",
    },
    Technique.TEM: {
        "z_hint": "section thickness (TEM: typically 50-300 nm)",
        "z_example": "70",
        "xy_example": "1",
        "kv": "TEM: typically 80-300 kV; e.g. 120",
        "na": "rarely recorded for TEM; leave empty if unknown",
        "dwell": "does not apply to a TEM camera; leave empty",
        "detector": "the camera, e.g. Gatan OneView",
        "manufacturer": "Thermo Fisher Scientific",
        "model": "Talos L120C",
    },
    Technique.STEM: {
        "z_hint": "section thickness or focal step (STEM: often 100-1000 nm sections)",
        "z_example": "200",
        "xy_example": "1",
        "kv": "STEM: typically 200-300 kV; e.g. 300",
        "na": "probe current, typically 0.01-0.5 nA; e.g. 0.05",
        "dwell": "typically 1-20 µs; e.g. 5",
        "detector": "e.g. HAADF or annular dark field",
        "manufacturer": "Thermo Fisher Scientific",
        "model": "Talos F200X",
    },
    Technique.ET: {
        "z_hint": "z size of a reconstructed tomogram voxel (ET: usually equal to x and y)",
        "z_example": "1",
        "xy_example": "1",
        "kv": "electron tomography: typically 200-300 kV; e.g. 300",
        "na": "rarely recorded for ET; leave empty if unknown",
        "dwell": "does not apply to a camera; leave empty",
        "detector": "the camera, e.g. Gatan K3 or Falcon 4i",
        "manufacturer": "Thermo Fisher Scientific",
        "model": "Titan Krios G4",
    },
}

_TEMPLATE = Template(
    """\
# Acquisition metadata for one volume EM dataset: curation schema ${version}, informed by
# REMBI (Recommended Metadata for Biological Images). Technique: ${technique}.
#
# How to fill it in:
#   - a value written <like this> is required: replace it (quotes are allowed);
#   - an empty field is optional: fill in what you know and leave the rest empty;
#   - a section whose fields are all empty is ignored;
#   - check the result with:  curate metadata check <this file>
# Lengths are in nanometres (nm) unless the field says otherwise. Dates are YYYY-MM-DD.

schema_version: "${version}"   # version of this document format; do not change

study:                         # the study and its people (REMBI: Study)
  # Title of the dataset as it will appear on deposition.
  # e.g. "FIB-SEM of mouse somatosensory cortex, layer 4"
  title: <title of the study>
  # One paragraph on what was imaged, why, and how the data can be reused.
  description: <a paragraph describing the study and the data>
  # Licence of the data, as an SPDX identifier: CC-BY-4.0 (attribution), CC0-1.0
  # (public domain; EMPIAR releases its entries under CC0), CC-BY-NC-4.0 ...;
  # for any other licence write LicenseRef-<name>.
  license: <SPDX licence id>
  keywords: []                 # free keywords, e.g. [connectomics, mitochondria, ${technique}]
  authors:                     # authors of the dataset, at least one, in author order
    - given_name: <given name>   # given (first) name, with middle names, e.g. Josiah
      family_name: <family name> # family (last) name, e.g. Carberry
      orcid:                   # ORCID iD, e.g. 0000-0002-1825-0097 (an https://orcid.org/ URL is fine)
      email:                   # e-mail address, e.g. j.carberry@example.org
      affiliation:             # organisation, e.g. University of Cambridge
      country:                 # ISO 3166-1 alpha-2 code, e.g. GB, US, DE (write "NO" in quotes)
    # - given_name: ...        # more authors: repeat the block above
  # Person to contact about the data. EMPIAR deposition needs one: if you fill this in,
  # given_name, family_name, email, affiliation and country are required.
  corresponding_author:
    given_name:                # e.g. Josiah
    family_name:               # e.g. Carberry
    orcid:                     # e.g. 0000-0002-1825-0097
    email:                     # e.g. j.carberry@example.org
    affiliation:               # e.g. University of Cambridge
    country:                   # e.g. GB
    address:                   # postal address of the affiliation (all optional)
      street:                  # e.g. Downing Street
      city:                    # e.g. Cambridge
      state_or_province:       # e.g. Cambridgeshire
      postcode:                # e.g. CB2 3DY
  principal_investigators:     # lab heads (EMPIAR needs one); if you fill one in, the
    - given_name:              # names, email, affiliation and country are required
      family_name:             # e.g. Carberry
      orcid:                   # e.g. 0000-0002-1825-0097
      email:                   # e.g. j.carberry@example.org
      affiliation:             # e.g. Brown University
      country:                 # e.g. US
  funding:                     # grants that paid for the work; one item per grant
    - funder:                  # funding organisation (required in an item), e.g. Wellcome Trust
      grant_id:                # grant number, e.g. 221052/Z/20/Z
      funder_id:               # ROR or Crossref Funder ID URL, e.g. https://ror.org/029chgv08
  # The publication describing the data (EMPIAR deposition needs one). If you fill it in,
  # status and title are required.
  citation:
    status:                    # published, submitted or in_preparation
    title:                     # title of the article
    authors:                   # leave empty to use study.authors; else a list of given_name, family_name, orcid
    journal:                   # e.g. Nature Methods
    year:                      # e.g. 2024
    volume:                    # e.g. 21
    issue:                     # e.g. 3
    first_page:                # e.g. 412
    last_page:                 # e.g. 421
    doi:                       # e.g. 10.1038/s41592-019-0396-9 (a https://doi.org/ URL is fine)
    pubmed_id:                 # e.g. 31036967
  release:                     # when the data may be made public
    policy: immediate          # immediate, hold_until_date or hold_until_publication
    date:                      # required with hold_until_date, e.g. 2025-06-30

biosample:                     # the biological sample (REMBI: Biosample)
  organism:                    # the species imaged (required)
    scientific_name: <scientific name>   # e.g. Mus musculus, Homo sapiens, Drosophila melanogaster
    ncbi_taxon: <NCBI taxon id>          # NCBI Taxonomy id, a whole number, e.g. 10090 (mouse), 9606 (human)
  tissue:                      # e.g. somatosensory cortex, layer 4
  cell_type:                   # e.g. pyramidal neuron, HeLa
  strain:                      # strain or cell line, e.g. C57BL/6J
  genotype:                    # e.g. wild type
  description:                 # anything else about the sample

specimen_preparation:          # how the sample was prepared (REMBI: Specimen); all optional
  fixation:                    # e.g. 2.5% glutaraldehyde, 2% paraformaldehyde; or high-pressure freezing
  staining:                    # e.g. rOTO (reduced osmium, thiocarbohydrazide, osmium), uranyl acetate, lead aspartate
  embedding:                   # e.g. Durcupan, Epon 812
  description:                 # anything else about the preparation

acquisition:                   # how the images were recorded (REMBI: Image acquisition)
  technique: ${technique_field}# FIB-SEM, SBF-SEM, ATUM-SEM, ssTEM, SEM, TEM, STEM or ET
  instrument:                  # vendor file tags may fill these in at ingest
    manufacturer:              # e.g. ${manufacturer}
    model:                     # e.g. ${model}
  detector:                    # ${detector}
  beam_energy_kv:              # accelerating voltage in kV; ${kv}
  beam_current_na:             # beam current in nA; ${na}
  dwell_time_us:               # pixel dwell time in µs; ${dwell}
  slice_thickness_nm:          # in nm: ${z_hint}; e.g. ${z_example}
  date:                        # first day of the acquisition, e.g. 2024-03-01

image_data:                    # the image volume (REMBI: Image data); checked against the files at ingest
  voxel_size:                  # size of one voxel; an axis left empty must come from the file headers
    z:                         # ${z_hint}
      value:                   # a number > 0, e.g. ${z_example}
      unit:                    # nm, µm (or um), Å (or A), pm, mm or m; e.g. nm
    y:                         # pixel size along y (down the image)
      value:                   # e.g. ${xy_example}
      unit:                    # e.g. nm
    x:                         # pixel size along x (across the image)
      value:                   # e.g. ${xy_example}
      unit:                    # e.g. nm
  dimensions:                  # volume size in voxels; if given, z, y and x are required
    z:                         # number of slices, e.g. 1200
    y:                         # image height in pixels, e.g. 2048
    x:                         # image width in pixels, e.g. 3072
  dtype:                       # voxel type: uint8, int8, uint16, int16, uint32, int32, float32, float64
  contrast_inverted: false     # true when membranes are bright (inverted backscatter contrast)
"""
)


def technique_from_text(text: str) -> Technique:
    """``"fib-sem"``, ``"FIBSEM"``, ``"SBF-SEM"`` ... as a Technique; MetadataError if unknown."""
    key = re.sub(r"[^a-z0-9]", "", str(text).casefold())
    for t in Technique:
        if re.sub(r"[^a-z0-9]", "", t.value.casefold()) == key:
            return t
    raise MetadataError(
        "unknown technique",
        field="acquisition.technique",
        expected=", ".join(t.value for t in Technique),
        found=text,
    )


def template(technique: str = "FIB-SEM") -> str:
    """A commented YAML template of the metadata document for ``technique``."""
    t = technique_from_text(technique)
    return _TEMPLATE.substitute(
        version=SCHEMA_VERSION, technique=t.value, technique_field=t.value.ljust(18), **_HINTS[t]
    )
