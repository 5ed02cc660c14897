"""Pore statistics per nucleus on the phantom's ground truth agree with what it was made of.

The phantom (curation.demo.phantom) places nuclear pores 120 nm wide at a known density
on a double envelope and keeps the truth aside. Analysing its ground-truth pores as a
prediction would be analysed (a binary mask, components, ``within`` the envelope,
``per`` nucleus) must give back, within the stated tolerances:

* count: exactly the phantom's number of pores;
* diameter: the median disc diameter of pores not cut by the volume's border within 5%
  of the phantom's pore diameter;
* density: pores per µm² of the nucleus surface (mesh) within 5% of the phantom's
  density (pores / envelope mid-surface area, measured from the shell's voxels).
"""

from __future__ import annotations

import numpy as np
import pytest

from curation.analysis.objects import analyze_objects
from curation.demo.phantom import PhantomSpec, generate_volume, nucleus_mask

COUNT_TOLERANCE = 0
DIAMETER_TOLERANCE = 0.05
DENSITY_TOLERANCE = 0.05


@pytest.fixture(scope="module", params=[PhantomSpec(), PhantomSpec(shape=(48, 224, 224), seed=4)],
                ids=["default", "seed4"])
def phantom(request):
    spec = request.param
    image, envelope, pores, stats = generate_volume(spec)
    return spec, image, envelope, pores, stats, nucleus_mask(envelope, pores, stats)


def test_pore_statistics_per_nucleus_match_the_phantom(phantom):
    spec, _image, envelope, pores, stats, nucleus = phantom
    vs = (spec.voxel_size_nm,) * 3
    with analyze_objects((pores > 0).astype(np.uint8), voxel_size_nm=vs, within=envelope, within_rule="any",
                         within_margin_nm=2 * spec.voxel_size_nm, per=nucleus, per_mode="components",
                         surface="mesh", plausibility="nuclear-pore", block_shape=(32, 64, 64)) as a:
        objects, parents = a.objects, a.parents
        assert a.counts["removed_outside"] == 0
        assert len(parents) == 1 and int(parents["parent_id"][0]) == 1
        # count
        assert abs(int(parents["count"][0]) - stats["n_pores"]) <= COUNT_TOLERANCE
        assert set(objects["parent_id"].tolist()) == {1}
        # diameter
        inner = ~objects["touches_border"]
        assert inner.sum() >= 5
        median = float(np.median(objects["disc_diameter_nm"][inner]))
        assert median == pytest.approx(spec.pore_diameter_nm, rel=DIAMETER_TOLERANCE)
        # density
        density = float(parents["density_per_um2"][0])
        assert density == pytest.approx(stats["pore_density_per_um2"], rel=DENSITY_TOLERANCE)
        assert parents["surface_um2"][0] == pytest.approx(stats["envelope_area_um2"], rel=DENSITY_TOLERANCE)
        # a plausible result raises no flag; the instance volume holds one id per pore
        assert a.findings == []
        labels = a.labels.read((slice(None),) * 3)
        assert int(labels.max()) == stats["n_pores"]
        # same objects as the phantom's own ids, voxel for voxel
        pairs = np.unique(np.stack([labels[pores > 0], pores[pores > 0]]), axis=1)
        assert pairs.shape[1] == stats["n_pores"]
