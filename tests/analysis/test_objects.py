"""The object table: shapes of known objects, filters, parents, surfaces, plausibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curation.analysis.objects import (
    PLAUSIBILITY,
    Plausibility,
    analyze_objects,
    parent_columns,
)
from curation.errors import AnalysisError


def _ball(shape, centre, radius_nm, vs):
    grids = np.indices(shape).astype(float)
    d2 = sum(((g - c) * v) ** 2 for g, c, v in zip(grids, centre, vs))
    return d2 <= radius_nm**2


def _disc(shape, centre, radius_nm, half_thickness_nm, vs):
    """A cylinder whose axis is z."""
    z, y, x = np.indices(shape).astype(float)
    r2 = ((y - centre[1]) * vs[1]) ** 2 + ((x - centre[2]) * vs[2]) ** 2
    return (r2 <= radius_nm**2) & (np.abs((z - centre[0]) * vs[0]) <= half_thickness_nm)


def test_sizes_and_shapes_of_known_objects():
    vs = (10.0, 5.0, 5.0)  # anisotropic
    shape = (40, 80, 80)
    vol = np.zeros(shape, dtype=np.uint8)
    vol[_ball(shape, (10, 20, 20), 90.0, vs)] = 1
    vol[_disc(shape, (28, 50, 50), 120.0, 30.0, vs)] = 1
    vol[0:3, 70:80, 0:5] = 2  # a small box in the corner
    with analyze_objects(vol, voxel_size_nm=vs, block_shape=(8, 16, 16)) as a:
        t = a.objects
        assert len(t) == 3 and list(t["id"]) == [1, 2, 3]
        # ids in C order of the first voxel: the corner box starts at z 0, y 70
        box, ball, disc = (int(np.flatnonzero(t["value"] == 2)[0]), 1, 2) if t["bbox_z0"][0] == 0 else (0, 1, 2)
        assert t["bbox_z0"][box] == 0 and t["voxels"][box] == 3 * 10 * 5
        assert t["volume_nm3"][box] == 150 * 250.0 and bool(t["touches_border"][box])
        # the ball: volume and sphere-equivalent diameter within a few percent of 180 nm
        i = int(np.argmin(np.abs(t["centroid_z_nm"] - 100.0)))
        assert t["equivalent_diameter_nm"][i] == pytest.approx(180.0, rel=0.03)
        assert t["centroid_y_nm"][i] == pytest.approx(100.0, abs=0.5)
        assert not t["touches_border"][i]
        # the disc: 240 nm across, 60 nm thick (the voxel extents included)
        j = int(np.argmin(np.abs(t["centroid_z_nm"] - 280.0)))
        assert t["disc_diameter_nm"][j] == pytest.approx(240.0, rel=0.03)
        assert t["thickness_nm"][j] == pytest.approx(70.0, rel=0.05)  # 7 planes of 10 nm
        assert a.parents is None and a.findings == [] and a.counts == {"components": 3, "removed_small": 0,
                                                                        "objects": 3}


def test_min_size_and_within_rules_keep_what_they_say():
    vs = (8.0, 8.0, 8.0)
    vol = np.zeros((10, 30, 30), dtype=np.uint8)
    vol[2:6, 2:6, 2:6] = 1  # 64 voxels, fully inside the mask
    vol[2:6, 10:14, 8:12] = 1  # 64 voxels, half inside (x 8..9 of 8..11)
    vol[2:6, 20:24, 20:24] = 1  # 64 voxels, outside, two voxels from the mask (x 25 on)
    vol[8, 28, 28] = 1  # one voxel
    mask = np.zeros_like(vol)
    mask[:, :, :10] = 1
    mask[:, 20:24, 25:] = 1
    mask[0] = 255  # an unlabeled plane is never inside
    common = dict(voxel_size_nm=vs, within=mask, within_unlabeled=255, block_shape=(4, 8, 8))
    with analyze_objects(vol, min_size_nm3=2 * 512, **common) as a:
        assert a.counts["removed_small"] == 1 and len(a.objects) == 2  # the lone voxel, then the far one
        assert list(a.objects["inside_fraction"]) == [1.0, 0.5]
    with analyze_objects(vol, within_rule="all", **common) as a:
        assert list(a.objects["voxels"]) == [64]
    with analyze_objects(vol, within_rule="majority", **common) as a:
        assert len(a.objects) == 2
    with analyze_objects(vol, within_rule="any", within_margin_nm=16.0, **common) as a:
        assert len(a.objects) == 3 and a.objects["inside_fraction"][2] == pytest.approx(16 / 64)
        # the instance volume holds the kept objects only, numbered as the table
        labels = a.labels.read((slice(None),) * 3)
        assert sorted(np.unique(labels)) == [0, 1, 2, 3]
        assert int((labels == 3).sum()) == 64 and labels[8, 28, 28] == 0


def test_parents_by_majority_with_ties_and_margin():
    vs = (8.0, 8.0, 8.0)
    vol = np.zeros((6, 20, 40), dtype=np.uint8)
    vol[1:5, 5:9, 2:8] = 1  # 6 wide: 4 columns on parent 1, 2 on parent 2
    vol[1:5, 5:9, 18:22] = 1  # 2 and 2: a tie, the smaller id wins
    vol[1:5, 5:9, 31:34] = 1  # one voxel short of parent 3
    parents = np.zeros_like(vol, dtype=np.uint16)
    parents[:, :, 0:6] = 1
    parents[:, :, 6:20] = 2
    parents[:, :, 20:30] = 4
    parents[:, :, 35:] = 3
    with analyze_objects(vol, voxel_size_nm=vs, per=parents, block_shape=(3, 7, 9)) as a:
        assert list(a.objects["parent_id"]) == [1, 2, 0]
        p = a.parents
        assert list(p["parent_id"]) == [1, 2, 3, 4] and list(p["count"]) == [1, 1, 0, 0]
        assert list(p["parent_voxels"]) == [6 * 20 * 6, 6 * 20 * 14, 6 * 20 * 5, 6 * 20 * 10]
        assert set(p["surface_method"]) == {"mesh"}
    with analyze_objects(vol, voxel_size_nm=vs, per=parents, per_margin_nm=16.0, block_shape=(3, 7, 9)) as a:
        assert list(a.objects["parent_id"]) == [1, 2, 3]


def test_parent_surface_faces_exact_and_mesh_close():
    vs = (20.0, 5.0, 4.0)
    shape = (20, 60, 70)
    par = np.zeros(shape, dtype=np.uint8)
    par[3:9, 10:30, 10:40] = 1  # a box inside the volume
    par[0:5, 40:60, 50:70] = 2  # a box cut by three borders: cut faces are not surface
    par[12:18, 40:55, 5:20] = 255  # unlabeled: not a parent
    want1 = 2 * (20 * 30 * vs[1] * vs[2] + 6 * 30 * vs[0] * vs[2] + 6 * 20 * vs[0] * vs[1]) / 1e6
    want2 = (20 * 20 * vs[1] * vs[2] + 5 * 20 * vs[0] * vs[2] + 5 * 20 * vs[0] * vs[1]) / 1e6
    run = dict(executor="threads")
    for block in [shape, (4, 9, 11)]:
        t = parent_columns(par, vs, "faces", 255, block, run)
        assert list(t["parent_id"]) == [1, 2]
        assert t["surface_um2"][0] == pytest.approx(want1, rel=1e-12)
        assert t["surface_um2"][1] == pytest.approx(want2, rel=1e-12)
    ball = _ball((30, 64, 64), (15, 32, 32), 110.0, (8.0, 4.0, 4.0)).astype(np.uint8)
    areas = [parent_columns(ball, (8.0, 4.0, 4.0), "mesh", None, b, run)["surface_um2"][0]
             for b in [(30, 64, 64), (7, 13, 9)]]
    assert areas[1] == pytest.approx(areas[0], rel=1e-6)  # blockwise = one mesh of the whole (float32 vertices)
    assert areas[0] == pytest.approx(4 * math.pi * 0.110**2, rel=0.03)


def test_plausibility_flags():
    vs = (8.0, 8.0, 8.0)
    vol = np.zeros((12, 60, 60), dtype=np.uint8)
    for k in range(4):
        vol[_disc(vol.shape, (6, 12 + 12 * (k // 2) * 2, 12 + 24 * (k % 2)), 40.0, 20.0, vs)] = 1  # 80 nm pores
    parent = np.zeros_like(vol)
    parent[1:11, 1:59, 1:59] = 1  # 0.579 µm² of faces: 4 objects are 6.9 per µm²
    rule = Plausibility("nuclear-pore", "disc_diameter_nm", (100.0, 140.0), (10.0, 60.0))
    with analyze_objects(vol, voxel_size_nm=vs, per=parent, plausibility=rule, surface="faces") as a:
        quantities = sorted(f.quantity for f in a.findings)
        assert quantities == ["density_per_um2", "disc_diameter_nm", "disc_diameter_nm"]
        med = next(f for f in a.findings if f.value > 1 and f.quantity == "disc_diameter_nm")
        assert med.value == pytest.approx(80, rel=0.1) and "outside 100-140 nm" in med.message
        dens = next(f for f in a.findings if f.quantity == "density_per_um2")
        assert dens.subject == "parent 1" and dens.value == pytest.approx(4 / 0.579072)
    assert PLAUSIBILITY["nuclear-pore"].density_per_um2 == (5.0, 60.0)


def test_bad_options_are_refused():
    vol = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(AnalysisError, match="voxel size"):
        analyze_objects(vol, voxel_size_nm=(8, 8))
    with pytest.raises(AnalysisError, match="within"):
        analyze_objects(vol, voxel_size_nm=(8, 8, 8), within_rule="most")
    with pytest.raises(AnalysisError, match="surface"):
        analyze_objects(vol, voxel_size_nm=(8, 8, 8), surface="area")
    with pytest.raises(AnalysisError, match="structure"):
        analyze_objects(vol, voxel_size_nm=(8, 8, 8), plausibility="ribosome")
    with pytest.raises(AnalysisError, match="per layer's shape"):
        analyze_objects(vol, voxel_size_nm=(8, 8, 8), per=np.zeros((4, 4, 5)))
    with pytest.raises(AnalysisError, match="not negative"):
        analyze_objects(vol, voxel_size_nm=(8, 8, 8), min_size_nm3=-1)
