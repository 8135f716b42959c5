"""The synthetic chest CT: geometry, truth that matches the image, files that keep both."""
import numpy as np
import SimpleITK as sitk

from dss_client.phantom import make_phantom, write_phantom


def test_phantom_has_body_lungs_airways_and_planted_nodules():
    phantom = make_phantom(shape=(64, 96, 96), spacing=(4.0, 4.0, 4.0), seed=3)
    assert phantom.hu.shape == (64, 96, 96) and phantom.hu.dtype == np.int16
    assert phantom.lungs.shape == phantom.hu.shape and set(np.unique(phantom.lungs)) == {0, 1, 2}
    lung_hu = phantom.hu[phantom.lungs > 0]
    assert -900 < np.median(lung_hu) < -800
    assert phantom.hu[0, 0, 0] < -900  # air outside the body
    assert (phantom.hu > 300).any()  # ribs and spine
    assert len(phantom.nodules) == 6 and [n.label for n in phantom.nodules] == list(range(1, 7))
    assert sum(n.juxta_pleural for n in phantom.nodules) == 2 and sum(n.irregular for n in phantom.nodules) == 1
    for nodule in phantom.nodules:
        assert 3.0 <= nodule.diameter_mm <= 30.0
        assert (phantom.nodule_labels == nodule.label).any()


def test_right_lung_is_at_smaller_physical_x_and_nodules_sit_in_lungs():
    phantom = make_phantom(shape=(80, 120, 120), spacing=(2.5, 2.5, 2.5), seed=1)
    x_index = np.arange(120)
    for label, sign in ((1, -1), (2, 1)):
        columns = np.nonzero(phantom.lungs == label)[2]
        centre_x = phantom.origin[0] + phantom.spacing[0] * x_index[columns].mean()
        assert np.sign(centre_x) == sign
    for nodule in phantom.nodules:
        index = [int(round((c - o) / s)) for c, o, s in zip(nodule.center_mm, phantom.origin, phantom.spacing)]
        assert phantom.lungs[index[2], index[1], index[0]] == (1 if nodule.center_mm[0] < 0 else 2)
        assert phantom.nodule_labels[index[2], index[1], index[0]] == nodule.label


def test_same_seed_same_phantom_and_other_seed_other_nodules():
    first, again = make_phantom(seed=5), make_phantom(seed=5)
    other = make_phantom(seed=6)
    assert np.array_equal(first.hu, again.hu)
    assert [n.center_mm for n in first.nodules] != [n.center_mm for n in other.nodules]


def test_custom_nodule_list():
    phantom = make_phantom(seed=2, nodules=(8.0, 20.0), juxta_pleural=0, irregular=0)
    assert [n.diameter_mm for n in phantom.nodules] == [8.0, 20.0]


def test_write_phantom_keeps_geometry_and_values(tmp_path):
    phantom = make_phantom(seed=4)
    for name in ("ct.nii.gz", "ct.nrrd"):
        write_phantom(tmp_path / name, phantom)
        image = sitk.ReadImage(str(tmp_path / name))
        assert np.array_equal(sitk.GetArrayFromImage(image), phantom.hu)
        assert np.allclose(image.GetSpacing(), phantom.spacing)
        assert np.allclose(image.GetOrigin(), phantom.origin)
        assert np.allclose(image.GetDirection(), phantom.direction)
    write_phantom(tmp_path / "lungs.nii.gz", phantom, labels=phantom.lungs)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "lungs.nii.gz"))), phantom.lungs)
