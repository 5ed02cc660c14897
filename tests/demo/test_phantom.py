"""The generated FIB-SEM phantom: geometry, contrast, noise, files and metadata."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml
from scipy import ndimage as ndi

from curation.demo.phantom import (
    ENVELOPE_THICKNESS_NM,
    Phantom,
    PhantomSpec,
    PhantomSpecError,
    generate_volume,
    phantom_metadata,
    write_phantom,
)
from curation.errors import AlreadyExistsError, CurationError

SMALL = PhantomSpec(shape=(24, 96, 112), seed=3)


@pytest.fixture(scope="module")
def default():
    return generate_volume(PhantomSpec())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_phantom(tmp_path_factory.mktemp("phantom") / "out", SMALL)


def test_shapes_and_dtypes(default):
    image, envelope, pores, stats = default
    assert image.shape == envelope.shape == pores.shape == (64, 256, 256)
    assert image.dtype == np.uint8
    assert envelope.dtype == np.uint8
    assert pores.dtype == np.uint16
    assert set(np.unique(envelope)) == {0, 1}
    assert stats["n_pores"] > 0
    # Ids are consecutive, 1..n_pores.
    assert np.array_equal(np.unique(pores), np.arange(stats["n_pores"] + 1))
    # The image uses a good part of the grey range without saturating.
    assert 100 < image.mean() < 200
    assert np.mean(image == 0) < 0.01 and np.mean(image == 255) < 0.01


def test_deterministic_for_a_seed():
    a = generate_volume(SMALL)
    b = generate_volume(SMALL)
    for x, y in zip(a[:3], b[:3]):
        assert np.array_equal(x, y)
    assert a[3] == b[3]
    c = generate_volume(PhantomSpec(shape=SMALL.shape, seed=SMALL.seed + 1))
    assert not np.array_equal(a[0], c[0])


def test_pore_count_matches_density(default):
    _, envelope, pores, stats = default
    spec = PhantomSpec()
    area = stats["envelope_area_um2"]
    # The reported area agrees with the ground truth shell's volume / its thickness.
    shell_um3 = np.count_nonzero(envelope | (pores > 0)) * (spec.voxel_size_nm / 1000) ** 3
    assert shell_um3 / (ENVELOPE_THICKNESS_NM / 1000) == pytest.approx(area, rel=0.1)
    expected = spec.pore_density_per_um2 * area
    assert expected > 8
    assert abs(stats["n_pores"] - expected) <= 0.25 * expected


def test_pore_diameter_about_15_voxels(default):
    _, _, pores, _ = default
    diameters = []
    for label, sl in enumerate(ndi.find_objects(pores), start=1):
        if sl is None or any(s.start == 0 or s.stop == n for s, n in zip(sl, pores.shape)):
            continue  # cut by the volume's edge
        pts = np.argwhere(pores[sl] == label).astype(float)
        eig = np.linalg.eigvalsh(np.cov(pts.T))  # ascending; smallest is across the envelope
        thickness = np.sqrt(12 * eig[0])
        cross_section = len(pts) / thickness
        diameters.append(2 * np.sqrt(cross_section / np.pi))
        # A disc, not an elongated blob: both in-plane extents agree.
        assert eig[2] / eig[1] < 1.3
    assert len(diameters) >= 3
    assert np.median(diameters) == pytest.approx(15.0, abs=1.5)


def test_envelope_is_two_dark_shells(default):
    image, envelope, pores, _ = default
    env = envelope.astype(bool)
    shell = env | (pores > 0)
    surface = env & ~ndi.binary_erosion(shell, border_value=1)  # both membranes
    lumen = env & ndi.binary_erosion(shell, iterations=2, border_value=1)
    membranes_mean = image[surface].mean()
    assert image[lumen].mean() > membranes_mean + 10  # a light space between two shells

    # The two sides (nucleoplasm and cytoplasm), away from the envelope.
    sides, n = ndi.label(~ndi.binary_dilation(shell, iterations=4))
    sizes = np.bincount(sides.ravel())[1:]
    assert n >= 2
    for label in np.argsort(sizes)[::-1][:2] + 1:
        assert image[sides == label].mean() > membranes_mean + 10


def test_pores_are_holes_in_the_envelope(default):
    _, envelope, pores, stats = default
    assert not np.any((envelope > 0) & (pores > 0))
    rim = ndi.binary_dilation(pores > 0) & ~(pores > 0)
    # Every pore is surrounded by envelope, and the rest of the rim is outside the shell.
    touching = np.unique(pores[ndi.binary_dilation(envelope > 0) & (pores > 0)])
    assert len(touching) == stats["n_pores"]
    assert envelope[rim].mean() > 0.3


def test_noise_present(default):
    image, envelope, pores, _ = default
    far = ~ndi.binary_dilation((envelope > 0) | (pores > 0), iterations=12)
    z, y, x = np.argwhere(far[8:-8, 16:-16, 16:-16])[0] + (8, 16, 16)
    patch = image[z - 4 : z + 4, y - 8 : y + 8, x - 8 : x + 8].astype(float)
    assert patch.std() > 5
    # Shot noise is white: neighbouring voxels differ, unlike the smooth texture.
    assert np.diff(patch, axis=2).std() / np.sqrt(2) > 5


def test_files_round_trip(written):
    assert isinstance(written, Phantom)
    image, envelope, pores, stats = generate_volume(SMALL)
    assert written.n_pores == stats["n_pores"]
    assert written.envelope_area_um2 == pytest.approx(stats["envelope_area_um2"])
    expected = [f"slice_{z:04d}.tif" for z in range(SMALL.shape[0])]
    for folder, vol in (
        (written.images_dir, image),
        (written.ground_truth_dir / "envelope", envelope),
        (written.ground_truth_dir / "pores", pores),
    ):
        files = sorted(folder.iterdir())
        assert [f.name for f in files] == expected
        stack = np.stack([tifffile.imread(f) for f in files])
        assert stack.dtype == vol.dtype
        assert np.array_equal(stack, vol)
        with tifffile.TiffFile(files[0]) as tif:
            assert len(tif.pages) == 1
            assert tif.pages[0].compression == 1  # none
    readme = (written.ground_truth_dir / "README.txt").read_text()
    assert "envelope" in readme and "pores" in readme


def test_never_overwrites(written):
    with pytest.raises(AlreadyExistsError):
        write_phantom(written.root, SMALL)


@pytest.mark.parametrize(
    "spec",
    [
        PhantomSpec(shape=(8, 64, 64)),
        PhantomSpec(shape=(32, 64)),  # type: ignore[arg-type]
        PhantomSpec(voxel_size_nm=0.0),
        PhantomSpec(pore_density_per_um2=-1.0),
    ],
)
def test_bad_spec_is_a_typed_error(spec):
    with pytest.raises(PhantomSpecError) as info:
        generate_volume(spec)
    assert isinstance(info.value, (CurationError, ValueError))


def test_metadata_yaml(written):
    doc = yaml.safe_load(written.metadata_path.read_text())
    assert doc == yaml.safe_load(yaml.safe_dump(phantom_metadata(SMALL, _stats_of(written))))
    assert doc["schema_version"] == "1.0.0"
    study = doc["study"]
    assert study["license"] == "CC-BY-4.0"
    assert "phantom" in study["description"] and f"seed {SMALL.seed}" in study["description"]
    assert f"{written.n_pores} nuclear pores" in study["description"]
    assert study["keywords"] == ["FIB-SEM", "nuclear pore", "nuclear envelope", "phantom"]
    assert study["authors"][0]["orcid"] == "0000-0002-1825-0097"
    assert study["corresponding_author"]["address"]["postcode"] == "CB1 1AA"
    assert study["principal_investigators"][0]["family_name"] == "Lovelace"
    assert study["funding"] == [{"funder": "Demo Research Council", "grant_id": "DRC-0001"}]
    assert study["citation"]["status"] == "in_preparation" and "authors" not in study["citation"]
    assert study["release"] == {"policy": "immediate"}
    assert doc["biosample"]["organism"] == {"scientific_name": "Mus musculus", "ncbi_taxon": 10090}
    acq = doc["acquisition"]
    assert acq["technique"] == "FIB-SEM"
    assert acq["slice_thickness_nm"] == 8.0
    assert acq["date"] == "2026-01-01"  # a string, not a date
    img = doc["image_data"]
    assert img["voxel_size"] == {ax: {"value": 8.0, "unit": "nm"} for ax in "zyx"}
    assert img["dimensions"] == dict(zip("zyx", SMALL.shape))
    assert img["dtype"] == "uint8"
    assert img["contrast_inverted"] is True


def test_metadata_passes_the_validator(written):
    metadata = pytest.importorskip("curation.metadata")
    load_metadata = getattr(metadata, "load_metadata", None)
    if load_metadata is None:
        pytest.skip("curation.metadata.load_metadata is not implemented yet")
    load_metadata(written.metadata_path)


def _stats_of(p: Phantom) -> dict:
    return {"n_pores": p.n_pores, "envelope_area_um2": p.envelope_area_um2}
