"""A generated FIB-SEM-like phantom of mouse neuron tissue, with ground truth.

The phantom stands in for a real acquisition in the demo and the tests: an isotropic
8 nm volume (z, y, x) showing part of a neuronal nucleus and the cytoplasm around it.

What it shows, at physically plausible sizes (all lengths are set in nanometres and
converted with the spec's voxel size):

* cytoplasm: smooth band-limited texture, ribosome-like granules, vesicles (a dark
  membrane rim around a light lumen, some dense-core), and a few stacks of ER-like
  cisternae (pairs of membranes);
* one nucleus (an ellipsoid of 2.8-3.6 µm semi-axes, gently wobbled, partly inside the
  volume) with lighter, finer-textured nucleoplasm, dark heterochromatin along the
  envelope (cleared at the pores) and a few chromocentre-like clumps;
* the double nuclear envelope: inner and outer membranes 8 nm thick, 40 nm of
  perinuclear space between them;
* nuclear pores, 120 nm wide, placed by dart throwing (Poisson-disc sampling) on the
  envelope at the requested density: each is a hole where the two membranes fuse (a
  membrane wall lines it), filled with a dense eight-fold ring and a fainter central plug.

The image model is a backscattered-electron one: heavy-metal stain scatters electrons,
the detected signal is shot noise (Poisson) plus read noise, with a per-slice drift of
beam current and faint vertical curtaining stripes from FIB milling, and the image is
inverted (``contrast_inverted: true``) so membranes are dark on a light background, the
usual display convention for FIB-SEM. A slight blur (PSF about one voxel) precedes the
noise.

Ground truth is kept aside: ``envelope`` (uint8, 1 = both membranes and the lumen
between them, pores cut out) and ``pores`` (uint16 instance labels, one id per pore: a
cylinder spanning the envelope). By construction they do not overlap, and their union
is the whole envelope shell.

Generation is vectorised (FFT-synthesised textures, scattered stamps, a k-d tree for
the pores) and deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation.errors import AlreadyExistsError, PhantomSpecError

# --- physical constants of the phantom (nanometres) -----------------------------------

MEMBRANE_THICKNESS_NM = 8.0
LUMEN_WIDTH_NM = 40.0  # perinuclear space between inner and outer membranes
ENVELOPE_THICKNESS_NM = 2 * MEMBRANE_THICKNESS_NM + LUMEN_WIDTH_NM
NUCLEUS_SEMI_AXES_NM = (2800.0, 3600.0)
ENVELOPE_WOBBLE_NM = 10.0
PORE_SPACING_FACTOR = 1.6  # minimum centre-to-centre distance, in pore diameters
RSA_JAMMING = 0.547  # coverage at which random sequential adsorption of discs jams
VESICLES_PER_UM3 = 60.0
VESICLE_RADIUS_NM = (16.0, 28.0)
RIBOSOMES_PER_UM3 = 4000.0
RIBOSOME_DIAMETER_NM = 25.0
ER_PERIOD_NM = 300.0
ER_LUMEN_NM = 40.0
PSF_SIGMA_VOX = (0.5, 0.7, 0.7)  # z, y, x: FWHM about 1.2-1.6 voxels

# --- stain densities (0 = unstained, 1 = saturated) ------------------------------------

STAIN_CYTOPLASM = 0.30
STAIN_NUCLEOPLASM = 0.22
STAIN_LUMEN = 0.24
STAIN_MEMBRANE = 0.55  # added on top of the background
STAIN_HETEROCHROMATIN = 0.35
STAIN_PORE_RING = 0.40
STAIN_PORE_PLUG = 0.22

# --- detector --------------------------------------------------------------------------

ELECTRONS_PER_UNIT_STAIN = 50.0
DETECTOR_BASELINE = 0.15
READ_NOISE_ELECTRONS = 2.0
GREY_CYTOPLASM = 150.0  # expected display grey of plain cytoplasm
GREY_SATURATED = 25.0  # expected display grey of stain 0.95



@dataclass(frozen=True)
class PhantomSpec:
    """What to generate. ``shape`` is (z, y, x) in voxels; voxels are isotropic."""

    shape: tuple[int, int, int] = (64, 256, 256)
    voxel_size_nm: float = 8.0
    seed: int = 0
    pore_density_per_um2: float = 11.0
    pore_diameter_nm: float = 120.0


@dataclass(frozen=True)
class Phantom:
    """A phantom written to disk (see :func:`write_phantom`)."""

    root: Path
    images_dir: Path
    metadata_path: Path
    ground_truth_dir: Path
    n_pores: int
    envelope_area_um2: float
    spec: PhantomSpec


# === public API ==========================================================================


def generate_volume(
    spec: PhantomSpec = PhantomSpec(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Generate the phantom in memory.

    Returns ``(image, envelope, pores, stats)``: the uint8 image, the uint8 envelope
    mask, the uint16 pore instance labels (ids 1..n_pores), all (z, y, x), and a
    JSON-safe dict of what was generated (``n_pores``, ``envelope_area_um2`` ...).
    """
    _check(spec)
    shape = tuple(int(n) for n in spec.shape)
    vs = float(spec.voxel_size_nm)
    t = MEMBRANE_THICKNESS_NM / vs
    lumen = LUMEN_WIDTH_NM / vs
    h = lumen / 2 + t  # half-thickness of the envelope
    c_mem = lumen / 2 + t / 2  # membrane centre lines at d = -c_mem (inner), +c_mem (outer)
    radius = spec.pore_diameter_nm / vs / 2

    centre, semi = _nucleus_geometry(shape, vs, _rng(spec.seed, 1))
    d = _ellipsoid_distance(shape, centre, semi)  # > 0 outside the nucleus (cytoplasm)
    _add_wobble(d, h, vs, _rng(spec.seed, 2))

    # The envelope band: everything within reach of the envelope's rendering.
    band = np.nonzero(np.abs(d) <= h + 3)
    bpos = np.stack(band, axis=1).astype(np.float64)
    bd = d[band].astype(np.float64)
    area_vox = float(np.count_nonzero(np.abs(bd) <= h)) / (2 * h)
    area_um2 = area_vox * (vs / 1000.0) ** 2

    pores = _place_pores(bpos, bd, centre, semi, area_um2, radius, vs, spec, _rng(spec.seed, 3))
    env = _render_envelope(bpos, bd, pores, radius, h, c_mem, t)

    out = d > 0
    stain = _background(shape, d, out, h, vs, pores, radius, _rng(spec.seed, 4))
    _add_particles(stain, d, h, vs, _rng(spec.seed, 5))

    # Envelope: the lumen replaces the background, then membranes and pore complexes.
    sb = stain[band]
    sb = sb * (1 - env["lumen"]) + STAIN_LUMEN * env["lumen"]
    sb += env["extra"]
    stain[band] = sb

    image = _detect(stain, vs, _rng(spec.seed, 6))
    del stain

    envelope = np.zeros(shape, dtype=np.uint8)
    envelope[band] = env["envelope"].astype(np.uint8)
    labels = np.zeros(shape, dtype=np.uint16)
    labels[band] = env["labels"]

    n_pores = int(env["labels"].max()) if env["labels"].size else 0
    stats = {
        "seed": int(spec.seed),
        "shape": list(shape),
        "voxel_size_nm": vs,
        "n_pores": n_pores,
        "pore_target": int(pores["target"]),
        "envelope_area_um2": round(area_um2, 6),
        "pore_density_per_um2": round(n_pores / area_um2, 4) if area_um2 > 0 else 0.0,
        "pore_diameter_nm": float(spec.pore_diameter_nm),
        "min_pore_spacing_nm": round(float(pores["spacing"]) * vs, 3),
        "membrane_thickness_nm": MEMBRANE_THICKNESS_NM,
        "lumen_width_nm": LUMEN_WIDTH_NM,
        "envelope_thickness_nm": ENVELOPE_THICKNESS_NM,
        "nucleus_centre_vox": [round(float(c), 3) for c in centre],
        "nucleus_semi_axes_vox": [round(float(a), 3) for a in semi],
        "contrast_inverted": True,
    }
    return image, envelope, labels, stats


def phantom_metadata(
    spec: PhantomSpec = PhantomSpec(), stats: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The acquisition metadata document describing a phantom (``metadata.yaml``).

    ``stats`` (from :func:`generate_volume`) adds the pore count and envelope area to
    the study description.
    """
    z, y, x = (int(n) for n in spec.shape)
    vs = float(spec.voxel_size_nm)
    counts = ""
    if stats is not None:
        counts = (
            f" It shows {int(stats['n_pores'])} nuclear pores on "
            f"{float(stats['envelope_area_um2']):.3f} square micrometres of nuclear envelope."
        )
    def contact(address: bool = False) -> dict[str, Any]:
        person: dict[str, Any] = {
            "given_name": "Ada",
            "family_name": "Lovelace",
            "orcid": "0000-0002-1825-0097",
            "email": "ada@example.org",
            "affiliation": "Curation Demo Lab",
            "country": "GB",
        }
        if address:
            person["address"] = {
                "street": "1 Example Road", "city": "Cambridge", "postcode": "CB1 1AA"
            }
        return person

    return {
        "schema_version": "1.0.0",
        "study": {
            "title": "FIB-SEM phantom of a mouse neuron nuclear envelope with nuclear pores",
            "description": (
                f"A generated phantom, not a real acquisition (seed {int(spec.seed)}, "
                f"{z} x {y} x {x} voxels of {vs:g} nm): part of a neuronal nucleus with its "
                f"double nuclear envelope, nuclear pores at {spec.pore_density_per_um2:g} per "
                f"square micrometre, {spec.pore_diameter_nm:g} nm wide, and the surrounding "
                f"cytoplasm, imaged as by FIB-SEM with inverted backscatter contrast." + counts
            ),
            "license": "CC-BY-4.0",
            "keywords": ["FIB-SEM", "nuclear pore", "nuclear envelope", "phantom"],
            "authors": [contact()],
            "corresponding_author": contact(address=True),
            "principal_investigators": [contact(address=True)],
            "funding": [{"funder": "Demo Research Council", "grant_id": "DRC-0001"}],
            "citation": {
                "status": "in_preparation",
                "title": "A generated FIB-SEM phantom for testing curation pipelines",
                "journal": "Journal of Demonstration Data",
                "year": 2026,
            },
            "release": {"policy": "immediate"},
        },
        "biosample": {
            "organism": {"scientific_name": "Mus musculus", "ncbi_taxon": 10090},
            "tissue": "brain",
            "cell_type": "neuron",
            "strain": "C57BL/6J",
            "description": "Simulated cortical neuron soma: nucleus and perinuclear cytoplasm.",
        },
        "specimen_preparation": {
            "fixation": "2.5% glutaraldehyde, 2% paraformaldehyde in 0.1 M cacodylate (simulated)",
            "staining": "reduced osmium, thiocarbohydrazide, osmium, uranyl acetate, "
            "lead aspartate (rOTO en bloc, simulated)",
            "embedding": "Durcupan resin (simulated)",
            "description": "No specimen was prepared: the volume is generated.",
        },
        "acquisition": {
            "technique": "FIB-SEM",
            "instrument": {"manufacturer": "Phantom", "model": "Generated"},
            "detector": "in-lens backscatter (simulated)",
            "beam_energy_kv": 1.5,
            "beam_current_na": 0.8,
            "dwell_time_us": 3.0,
            "slice_thickness_nm": vs,
            "date": "2026-01-01",
        },
        "image_data": {
            "voxel_size": {ax: {"value": vs, "unit": "nm"} for ax in ("z", "y", "x")},
            "dimensions": {"z": z, "y": y, "x": x},
            "dtype": "uint8",
            "contrast_inverted": True,
        },
    }


def write_phantom(out_dir: Path, spec: PhantomSpec = PhantomSpec()) -> Phantom:
    """Generate a phantom and write it as a folder of per-slice TIFFs.

    Layout: ``images/slice_0000.tif ...``, ``metadata.yaml``,
    ``ground_truth/{envelope,pores,nuclei}/slice_0000.tif ...`` and ``ground_truth/README.txt``
    (``nuclei``: :func:`nucleus_mask`, the parent layer for pore statistics per nucleus).
    ``out_dir`` may exist but must not already hold a phantom: nothing is overwritten
    (:class:`~curation.errors.AlreadyExistsError`).
    """
    import tifffile
    import yaml

    root = Path(out_dir)
    images_dir = root / "images"
    gt_dir = root / "ground_truth"
    metadata_path = root / "metadata.yaml"
    for p in (images_dir, gt_dir, metadata_path):
        if p.exists():
            hint = "choose an empty or new output folder"
            raise AlreadyExistsError("a phantom is already written here", path=p, hint=hint)
    image, envelope, pores, stats = generate_volume(spec)

    (gt_dir / "envelope").mkdir(parents=True)
    (gt_dir / "pores").mkdir()
    (gt_dir / "nuclei").mkdir()
    images_dir.mkdir()
    nuclei = nucleus_mask(envelope, pores, stats)
    width = max(4, len(str(image.shape[0] - 1)))
    px_per_um = 1000.0 / float(spec.voxel_size_nm)
    res = {"imagej": True, "resolution": (px_per_um, px_per_um), "metadata": {"unit": "um"}}
    volumes = ((images_dir, image), (gt_dir / "envelope", envelope), (gt_dir / "pores", pores),
               (gt_dir / "nuclei", nuclei))
    for folder, vol in volumes:
        for z in range(vol.shape[0]):
            tifffile.imwrite(folder / f"slice_{z:0{width}d}.tif", vol[z], **res)
    (gt_dir / "README.txt").write_text(_gt_readme(spec, stats), encoding="utf-8")
    doc = phantom_metadata(spec, stats)
    metadata_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    n, area = int(stats["n_pores"]), float(stats["envelope_area_um2"])
    return Phantom(root, images_dir, metadata_path, gt_dir, n, area, spec)


def nucleus_mask(envelope: np.ndarray, pores: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """The nucleus as the phantom made it, from its ground truth: the side of the envelope
    that holds the nucleus centre (``stats`` of :func:`generate_volume`), together with
    the envelope and its pores (uint8, 1 = nucleus). The parent layer for pore statistics
    per nucleus; its surface is the envelope's outer membrane."""
    from scipy import ndimage

    shell = (envelope > 0) | (pores > 0)
    sides, _ = ndimage.label(~shell)
    sizes = np.bincount(sides.ravel())
    sizes[0] = 0
    centre = np.asarray(stats["nucleus_centre_vox"], dtype=float)
    semi = np.asarray(stats["nucleus_semi_axes_vox"], dtype=float)
    for side in np.argsort(sizes)[::-1][:2]:
        if sizes[side] == 0:
            break
        p = np.argwhere(sides == side)[0]
        if np.sum(((p - centre) / semi) ** 2) < 1:
            return ((sides == side) | shell).astype(np.uint8)
    return shell.astype(np.uint8)  # the volume shows no nucleoplasm: the envelope alone


# === checks and random streams ==========================================================


def _check(spec: PhantomSpec) -> None:
    shape, vs = tuple(spec.shape), float(spec.voxel_size_nm)
    checks = [
        ("shape", "three integers, each at least 16 (z, y, x)", shape,
         len(shape) == 3 and all(isinstance(n, (int, np.integer)) and n >= 16 for n in shape)),
        ("voxel_size_nm", "1 to 50 nm", vs, 1.0 <= vs <= 50.0),
        ("pore_diameter_nm", f"{2 * vs:g} to 500 nm", spec.pore_diameter_nm,
         2 * vs <= spec.pore_diameter_nm <= 500.0),
        ("pore_density_per_um2", "0 to 100 per square micrometre", spec.pore_density_per_um2,
         0.0 <= spec.pore_density_per_um2 <= 100.0),
        ("seed", "a non-negative integer", spec.seed,
         isinstance(spec.seed, (int, np.integer)) and spec.seed >= 0),
    ]  # fmt: skip
    for field, expected, found, good in checks:
        if not good:
            raise PhantomSpecError(
                "cannot generate this phantom", field=field, expected=expected, found=found
            )


def _rng(seed: int, stream: int) -> np.random.Generator:
    """One independent generator per component, so components do not shift each other."""
    return np.random.default_rng([int(seed), stream])


# === geometry ============================================================================


def _nucleus_geometry(
    shape: tuple[int, ...], vs: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and semi-axes (voxels) of a nucleus whose surface crosses the volume."""
    semi = rng.uniform(*NUCLEUS_SEMI_AXES_NM, size=3) / vs
    theta = rng.uniform(0, 2 * np.pi)
    u = np.array([rng.uniform(-0.25, 0.25), np.sin(theta), np.cos(theta)])
    u /= np.linalg.norm(u)
    r_u = 1.0 / np.sqrt(np.sum((u / semi) ** 2))  # centre-to-surface along u
    offset = rng.uniform(-0.15, 0.15) * min(shape[1], shape[2])
    vol_centre = (np.asarray(shape, dtype=float) - 1) / 2
    return vol_centre + u * (r_u + offset), semi


def _ellipsoid_distance(
    shape: tuple[int, ...], centre: np.ndarray, semi: np.ndarray
) -> np.ndarray:
    """First-order signed distance (voxels) to an ellipsoid's surface, > 0 outside."""
    grids = [np.arange(n, dtype=np.float32) - np.float32(c) for n, c in zip(shape, centre)]
    u = [(g / np.float32(a)) ** 2 for g, a in zip(grids, semi)]
    v = [(g / np.float32(a * a)) ** 2 for g, a in zip(grids, semi)]
    rho = u[0][:, None, None] + u[1][None, :, None] + u[2][None, None, :]
    grad = v[0][:, None, None] + v[1][None, :, None] + v[2][None, None, :]
    np.sqrt(rho, out=rho)
    np.sqrt(grad, out=grad)
    np.maximum(grad, np.float32(1e-12), out=grad)
    d = rho - np.float32(1)
    d *= rho
    d /= grad
    return d


def _ellipsoid_normals(pos: np.ndarray, centre: np.ndarray, semi: np.ndarray) -> np.ndarray:
    n = (pos - centre) / semi**2
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _add_wobble(d: np.ndarray, h: float, vs: float, rng: np.random.Generator) -> None:
    """Bend the envelope gently: a sum of long plane waves, added near the surface only."""
    amp = ENVELOPE_WOBBLE_NM / vs
    near = np.nonzero(np.abs(d) < h + 3 + 4 * amp)
    if near[0].size == 0:
        return
    pos = np.stack(near, axis=1).astype(np.float32)
    n_waves = 8
    dirs = rng.normal(size=(n_waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    wavelength = rng.uniform(300.0, 900.0, size=n_waves) / vs
    k = (2 * np.pi / wavelength)[:, None] * dirs
    phase = rng.uniform(0, 2 * np.pi, size=n_waves)
    w = np.zeros(len(pos), dtype=np.float32)
    for i in range(n_waves):
        w += np.cos(pos @ k[i].astype(np.float32) + np.float32(phase[i]))
    w *= np.float32(amp / np.sqrt(n_waves / 2))
    d[near] += w


# === nuclear pores =======================================================================


def _place_pores(
    bpos: np.ndarray,
    bd: np.ndarray,
    centre: np.ndarray,
    semi: np.ndarray,
    area_um2: float,
    radius: float,
    vs: float,
    spec: PhantomSpec,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Dart throwing on the envelope's mid-surface: uniform, with a minimum spacing."""
    diameter = 2 * radius
    density_vox = spec.pore_density_per_um2 * (vs / 1000.0) ** 2
    target = int(round(spec.pore_density_per_um2 * area_um2))
    spacing = PORE_SPACING_FACTOR * diameter
    if density_vox > 0:
        jam = np.sqrt(4 * RSA_JAMMING / (np.pi * density_vox))  # spacing at which RSA jams
        spacing = max(1.05 * diameter, min(spacing, 0.8 * jam))
    empty = np.zeros((0, 3))
    result = {"target": target, "spacing": spacing, "centres": empty, "normals": empty}
    surf = np.abs(bd) < 0.5
    if target == 0 or not np.any(surf):
        return result
    cand = bpos[surf]
    normals = _ellipsoid_normals(cand, centre, semi)
    cand = cand - bd[surf][:, None] * normals  # project onto the mid-surface
    order = rng.permutation(len(cand))[: 60 * target + 1000]
    accepted: list[int] = []
    kept = np.empty((target, 3))
    min2 = spacing**2
    for i in order:
        p = cand[i]
        if accepted and np.min(np.sum((kept[: len(accepted)] - p) ** 2, axis=1)) < min2:
            continue
        kept[len(accepted)] = p
        accepted.append(int(i))
        if len(accepted) == target:
            break
    idx = np.asarray(accepted, dtype=np.int64)
    result["centres"] = cand[idx]
    result["normals"] = normals[idx]
    return result


def _render_envelope(
    bpos: np.ndarray,
    bd: np.ndarray,
    pores: dict[str, Any],
    radius: float,
    h: float,
    c_mem: float,
    t: float,
) -> dict[str, np.ndarray]:
    """Ground truth and stain of the envelope band (membranes, lumen, pores)."""
    from scipy.spatial import cKDTree

    n = len(bd)
    radial = np.full(n, np.inf)
    theta = np.zeros(n)
    nearest = np.full(n, -1, dtype=np.int64)
    centres, normals = pores["centres"], pores["normals"]
    if len(centres):
        # The two nearest centres: the pore a voxel belongs to is the one it is axially
        # closest to, which near a crowded rim need not be the nearest centre.
        ks = [1, 2] if len(centres) > 1 else [1]
        reach = radius + h + 5
        dist, jj = cKDTree(centres).query(bpos, k=ks, distance_upper_bound=reach, workers=-1)
        e1, e2 = _basis(normals)
        for col in range(len(ks)):
            hit = np.nonzero(np.isfinite(dist[:, col]))[0]
            jh = jj[hit, col]
            v = bpos[hit] - centres[jh]
            axial = np.einsum("ij,ij->i", v, normals[jh])
            inplane = v - axial[:, None] * normals[jh]
            r = np.linalg.norm(inplane, axis=1)
            better = r < radial[hit]
            hit, jh, inplane = hit[better], jh[better], inplane[better]
            radial[hit] = r[better]
            theta[hit] = np.arctan2(
                np.einsum("ij,ij->i", inplane, e2[jh]), np.einsum("ij,ij->i", inplane, e1[jh])
            )
            nearest[hit] = jh

    absd = np.abs(bd)
    shell = absd <= h
    in_pore = shell & (radial <= radius)
    # Labels: consecutive ids, in the order the pores were placed.
    raw = np.where(in_pore, nearest + 1, 0)
    present = np.unique(raw[raw > 0])
    lut = np.zeros(len(centres) + 1, dtype=np.uint16)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    labels = lut[raw]

    def box(x: np.ndarray, half: float) -> np.ndarray:
        """Coverage of a slab of half-width ``half`` with a one-voxel antialiasing ramp."""
        return np.clip(half + 0.5 - np.abs(x), 0.0, 1.0)

    hole = np.clip(radial - radius + 0.5, 0.0, 1.0)  # 0 inside a pore, 1 outside
    membranes = (box(bd - c_mem, t / 2) + box(bd + c_mem, t / 2)) * hole
    wall = box(radial - (radius + t / 2), t / 2) * box(bd, c_mem)
    inner = 0.35 * radius
    ring = (
        np.clip(radius - radial + 0.5, 0.0, 1.0)
        * np.clip(radial - inner + 0.5, 0.0, 1.0)
        * box(bd, h + 1.0)
        * (1 + 0.35 * np.cos(8 * theta))
    )
    plug = np.clip(inner - radial + 0.5, 0.0, 1.0) * box(bd, h)
    extra = (
        STAIN_MEMBRANE * np.minimum(membranes + wall, 1.0)
        + STAIN_PORE_RING * ring
        + STAIN_PORE_PLUG * plug
    )
    return {
        "envelope": shell & ~in_pore,
        "labels": labels,
        "lumen": box(bd, c_mem - t / 2).astype(np.float32),
        "extra": extra.astype(np.float32),
    }


def _basis(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane normal to each row of ``normals``."""
    ref = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(normals, ref)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(normals, e1)


# === tissue ===========================================================================


def _noise_spectrum(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    rshape = (shape[0], shape[1], shape[2] // 2 + 1)
    w = rng.standard_normal((2, *rshape), dtype=np.float32)
    return w[0] + 1j * w[1]


def _field(
    spectrum: np.ndarray,
    shape: tuple[int, ...],
    scales: list[tuple[float, float]],
) -> np.ndarray:
    """A unit-variance Gaussian random field: white noise through Gaussian low-passes.

    ``scales`` lists (sigma in voxels, weight); the filter is their weighted sum.
    """
    from scipy import fft

    fz = fft.fftfreq(shape[0]).astype(np.float32)
    fy = fft.fftfreq(shape[1]).astype(np.float32)
    fx = fft.rfftfreq(shape[2]).astype(np.float32)
    filt = None
    for sigma, weight in scales:
        c = np.float32(-2 * np.pi**2 * sigma**2)
        term = (
            np.float32(weight)
            * np.exp(c * fz**2)[:, None, None]
            * np.exp(c * fy**2)[None, :, None]
            * np.exp(c * fx**2)[None, None, :]
        )
        filt = term if filt is None else filt + term
    out = fft.irfftn(spectrum * filt, s=shape, workers=-1).astype(np.float32, copy=False)
    out -= out.mean(dtype=np.float64)
    out /= np.float32(max(float(out.std(dtype=np.float64)), 1e-12))
    return out


def _background(
    shape: tuple[int, ...],
    d: np.ndarray,
    out: np.ndarray,
    h: float,
    vs: float,
    pores: dict[str, Any],
    radius: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Stain of cytoplasm and nucleoplasm: textures, heterochromatin, ER cisternae."""
    # Disjoint regions may share a noise spectrum: the fields never meet.
    spec1 = _noise_spectrum(shape, rng)
    stain = _field(spec1, shape, [(2.0, 0.6), (6.0, 0.8)])
    stain *= np.float32(0.035)
    stain += np.float32(STAIN_CYTOPLASM)
    nucleo = _field(spec1, shape, [(0.8, 0.7), (2.5, 0.5)])
    nucleo *= np.float32(0.03)
    nucleo += np.float32(STAIN_NUCLEOPLASM)
    inside = ~out
    np.copyto(stain, nucleo, where=inside)
    del nucleo, spec1

    # Heterochromatin: patches along the inner membrane, and chromocentre-like clumps.
    spec2 = _noise_spectrum(shape, rng)
    patches = _field(spec2, shape, [(5.0, 0.6), (15.0, 1.0)])
    depth = -d - np.float32(h)
    np.maximum(depth, 0, out=depth)
    periph = np.exp(depth * np.float32(-vs / 100.0))
    periph *= np.clip((patches + 0.4) / 0.6, 0, 1)
    low = _field(_noise_spectrum(shape, rng), shape, [(30.0 * 8.0 / vs, 1.0)])
    clumps = np.clip((low - 1.3) / 0.25, 0, 1)
    clumps *= np.clip((depth - 15.0) / 5.0, 0, 1)
    hc = np.maximum(periph, clumps)
    hc *= inside
    _exclude_near_pores(hc, pores, radius, h)
    hc *= np.float32(STAIN_HETEROCHROMATIN)
    stain += hc
    del hc, periph, clumps, depth

    # ER: stacks of wavy parallel cisternae (two membranes each), in a few patches.
    warp = _field(spec2, shape, [(30.0 * 8.0 / vs, 1.0)])  # outside only; patches was inside
    del spec2, patches
    theta = rng.uniform(0, 2 * np.pi)
    k = np.array([rng.uniform(-0.3, 0.3), np.sin(theta), np.cos(theta)])
    k /= np.linalg.norm(k)
    period = ER_PERIOD_NM / vs
    grids = [np.arange(n, dtype=np.float32) * np.float32(ki / period) for n, ki in zip(shape, k)]
    phase = grids[0][:, None, None] + grids[1][None, :, None] + grids[2][None, None, :]
    phase += warp * np.float32(0.25)
    phase -= np.floor(phase + np.float32(0.5))
    dist = np.abs(phase) * np.float32(period)  # voxels to the nearest sheet
    half_t = MEMBRANE_THICKNESS_NM / vs / 2
    c = ER_LUMEN_NM / vs / 2 + half_t
    er = np.clip(np.float32(half_t + 0.5) - np.abs(dist - np.float32(c)), 0, 1)
    mask = np.clip((-low - 0.9) / 0.3, 0, 1)
    mask *= np.clip((d - np.float32(h + 8.0)) / 4.0, 0, 1)
    er *= mask
    er *= np.float32(STAIN_MEMBRANE * 0.8)
    stain += er
    return stain


def _exclude_near_pores(hc: np.ndarray, pores: dict[str, Any], radius: float, h: float) -> None:
    """Heterochromatin-exclusion zones: clear a sphere around each pore."""
    centres = pores["centres"]
    if not len(centres):
        return
    r = radius + h + 2.0
    excl = _stamp(hc.shape, centres, int(np.ceil(r + 1)), lambda dist: np.clip(r - dist, 0, 1))
    np.minimum(excl, 1, out=excl)
    hc *= 1 - excl


def _stamp(
    shape: tuple[int, ...],
    centres: np.ndarray,
    half: int,
    profile: Any,
    params: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of ``profile(distance[, param])`` stamped around each centre (float32 volume)."""
    ax = np.arange(-half, half + 1)
    offs = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1).reshape(-1, 3)
    offs = offs[np.linalg.norm(offs, axis=1) <= half + 1]
    upper = np.asarray(shape)
    batch = max(1, 2_000_000 // len(offs))
    flats, weights = [], []
    for start in range(0, len(centres), batch):
        c = centres[start : start + batch]
        p = c[:, None, :] if params is None else params[start : start + batch, None]
        pos = np.rint(c).astype(np.int64)[:, None, :] + offs[None, :, :]  # (n, m, 3)
        dist = np.linalg.norm(pos - c[:, None, :], axis=2)
        vals = profile(dist) if params is None else profile(dist, p)
        ok = np.all((pos >= 0) & (pos < upper), axis=2) & (np.abs(vals) > 1e-4)
        flats.append(np.ravel_multi_index(tuple(pos[ok].T), shape))
        weights.append(vals[ok].astype(np.float32))
    flat = np.concatenate(flats) if flats else np.zeros(0, dtype=np.int64)
    w = np.concatenate(weights) if weights else np.zeros(0, dtype=np.float32)
    size = int(np.prod(shape))
    return np.bincount(flat, weights=w, minlength=size).astype(np.float32).reshape(shape)


def _add_particles(
    stain: np.ndarray, d: np.ndarray, h: float, vs: float, rng: np.random.Generator
) -> None:
    """Ribosome-like granules and vesicles, in the cytoplasm only."""
    shape = stain.shape
    vol_um3 = float(np.prod(shape)) * (vs / 1000.0) ** 3
    t = MEMBRANE_THICKNESS_NM / vs

    def sample(density: float, margin: float) -> np.ndarray:
        n = rng.poisson(density * vol_um3)
        pts = rng.uniform(0, 1, size=(n, 3)) * (np.asarray(shape) - 1)
        idx = tuple(np.rint(pts).astype(np.int64).T)
        return pts[d[idx] > h + margin]

    # Ribosomes: Gaussian blobs, FWHM 25 nm.
    sigma = RIBOSOME_DIAMETER_NM / vs / 2.355
    rib = sample(RIBOSOMES_PER_UM3, 3 * sigma + 2)
    if len(rib):
        s2 = np.float32(2 * sigma**2)
        stain += _stamp(shape, rib, int(np.ceil(3 * sigma)), lambda r: 0.15 * np.exp(-(r**2) / s2))

    # Vesicles: a membrane rim around a light lumen; one in six is dense-cored.
    r_lo, r_hi = (r / vs for r in VESICLE_RADIUS_NM)
    ves = sample(VESICLES_PER_UM3, r_hi + 3)
    if len(ves):
        rad = rng.uniform(r_lo, r_hi, size=len(ves))
        dense = rng.uniform(size=len(ves)) < 1 / 6
        params = np.where(dense, -rad, rad)  # sign carries the kind

        def vesicle(r: np.ndarray, p: np.ndarray) -> np.ndarray:
            rv = np.abs(p)
            rim = np.clip(t / 2 + 0.5 - np.abs(r - rv), 0, 1)
            lumen = np.clip(rv - t / 2 - r + 0.5, 0, 1)
            fill = np.where(p < 0, 0.30, -0.08)
            return 0.45 * rim + fill * lumen

        stain += _stamp(shape, ves, int(np.ceil(r_hi + 1)), vesicle, params)


# === image formation ====================================================================


def _detect(stain: np.ndarray, vs: float, rng: np.random.Generator) -> np.ndarray:
    """Blur, backscatter signal with shot and read noise, drift, curtaining; inverted uint8."""
    from scipy import ndimage

    shape = stain.shape
    blurred = ndimage.gaussian_filter(stain, PSF_SIGMA_VOX, truncate=3.0, output=np.float32)

    # Beam-current drift: a smoothed random walk over slices, about 2%.
    walk = np.cumsum(rng.normal(size=shape[0]))
    walk = ndimage.gaussian_filter1d(walk, 3.0)
    walk -= walk.mean()
    walk /= max(float(walk.std()), 1e-9)
    gain = 1 + 0.02 * walk + 0.005 * rng.normal(size=shape[0])

    # Curtaining: faint vertical stripes (constant down y, varying across x), slowly
    # changing from slice to slice, fading in and out down the image.
    stripes = rng.normal(size=(shape[0], shape[2]))
    stripes = ndimage.gaussian_filter(stripes, (6.0, 1.2)) + 0.5 * ndimage.gaussian_filter(
        stripes, (10.0, 4.0)
    )
    stripes /= max(float(stripes.std()), 1e-9)
    fade = ndimage.gaussian_filter1d(rng.normal(size=shape[1]), max(shape[1] / 8, 1.0))
    fade = 0.6 + 0.4 * fade / max(float(np.abs(fade).max()), 1e-9)
    curtain = (0.025 * stripes).astype(np.float32)[:, None, :]
    curtain = curtain * fade.astype(np.float32)[None, :, None]
    curtain += np.float32(1)

    lam = blurred
    lam += np.float32(DETECTOR_BASELINE)
    lam *= np.float32(ELECTRONS_PER_UNIT_STAIN)
    lam *= gain.astype(np.float32)[:, None, None]
    lam *= curtain
    del curtain
    counts = rng.poisson(lam).astype(np.float32)
    del lam, blurred
    counts += rng.standard_normal(shape, dtype=np.float32) * np.float32(READ_NOISE_ELECTRONS)

    # Inverted display: expected cytoplasm at GREY_CYTOPLASM, heavy stain near black.
    lam_c = ELECTRONS_PER_UNIT_STAIN * (DETECTOR_BASELINE + STAIN_CYTOPLASM)
    lam_s = ELECTRONS_PER_UNIT_STAIN * (DETECTOR_BASELINE + 0.95)
    slope = (GREY_CYTOPLASM - GREY_SATURATED) / (lam_s - lam_c)
    counts *= np.float32(-slope)
    counts += np.float32(GREY_CYTOPLASM + slope * lam_c)
    np.rint(counts, out=counts)
    np.clip(counts, 0, 255, out=counts)
    return counts.astype(np.uint8)


def _gt_readme(spec: PhantomSpec, stats: Mapping[str, Any]) -> str:
    return f"""Ground truth for a generated FIB-SEM phantom (seed {spec.seed}).

Both folders hold one single-page TIFF per z slice, named as the images
(slice_0000.tif ...), with the same (y, x) shape as the image slices.

envelope/  uint8 mask of the nuclear envelope.
           0 = not envelope; 1 = nuclear envelope: the inner and outer membranes
           ({MEMBRANE_THICKNESS_NM:g} nm each) and the perinuclear space between them
           ({LUMEN_WIDTH_NM:g} nm), {ENVELOPE_THICKNESS_NM:g} nm in all, with the pores cut out.

pores/     uint16 instance labels of the nuclear pores.
           0 = background; 1..{stats['n_pores']} = one id per pore: a cylinder
           {spec.pore_diameter_nm:g} nm wide spanning the envelope at that pore.
           Pore and envelope voxels never overlap; together they are the whole envelope.

nuclei/    uint8 mask of the nucleus: 1 = nucleoplasm, envelope and pores (the side of
           the envelope holding the nucleus centre); its surface is the outer membrane.

Counts: {stats['n_pores']} pores on {float(stats['envelope_area_um2']):.4f} square micrometres of
envelope ({float(stats['pore_density_per_um2']):.2f} per square micrometre; requested
{spec.pore_density_per_um2:g}). Voxel size {spec.voxel_size_nm:g} nm, isotropic.
"""
