"""Classical lung segmentation, measured on phantoms and real CT (thresholds measured with margin:
phantom Dice 0.999, abdominal reference Dice 0.965, chest CT 3.0 L right and 2.4 L left)."""
import numpy as np
import pytest
import SimpleITK as sitk

from dss_client.phantom import make_phantom
from dss_inference.imageio import Volume
from dss_inference.models import LungSegmentation
from dss_inference.models.common import resolve_device
from helpers import CT_SAMPLES

pytestmark = pytest.mark.skipif(not CT_SAMPLES.is_dir(), reason=f"CT samples not found at {CT_SAMPLES}")


def volume_of(image: sitk.Image) -> Volume:
    return Volume(sitk.GetArrayFromImage(image).astype(np.float32), image.GetSpacing(),
                  image.GetOrigin(), image.GetDirection())


def phantom_volume(phantom) -> Volume:
    return Volume(phantom.hu.astype(np.float32), phantom.spacing, phantom.origin, phantom.direction)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def model():
    return LungSegmentation(resolve_device("cpu"))


def no_progress(stage, fraction):
    pass


@pytest.mark.parametrize("seed", [0, 1])
def test_lung_dice_on_phantoms(model, seed):
    phantom = make_phantom(shape=(96, 128, 128), spacing=(2.5, 2.5, 2.5), seed=seed)
    result = model.run(phantom_volume(phantom), no_progress)
    assert result.labels.shape == phantom.hu.shape and result.labels.dtype == np.uint8
    for label in (1, 2):
        assert dice(result.labels == label, phantom.lungs == label) >= 0.97
    assert result.report["lungs"]["right_ml"] > result.report["lungs"]["left_ml"] > 500


def test_lungs_touching_at_the_midline_are_split(model):
    """One air component holding both lungs: eroded until it splits (measured Dice 0.97 / 0.96)."""
    phantom = make_phantom(shape=(96, 128, 128), spacing=(2.5, 2.5, 2.5), seed=0, touching_lungs=True)
    result = model.run(phantom_volume(phantom), no_progress)
    for label in (1, 2):
        assert dice(result.labels == label, phantom.lungs == label) >= 0.93


def test_a_single_lung_is_named_by_its_side_of_the_body(model):
    """After a left pneumonectomy, say: one lung, right of the body's midline, and not split."""
    phantom = make_phantom(shape=(96, 128, 128), spacing=(2.5, 2.5, 2.5), seed=1, nodules=())
    hu = phantom.hu.astype(np.float32)
    hu[phantom.lungs == 2] = 40.0
    result = model.run(Volume(hu, phantom.spacing, phantom.origin, phantom.direction), no_progress)
    assert dice(result.labels == 1, phantom.lungs == 1) >= 0.97
    assert result.report["lungs"]["left_ml"] < 20


def test_sides_follow_the_direction_matrix_not_the_array_order(model):
    phantom = make_phantom(shape=(64, 96, 96), spacing=(4.0, 4.0, 4.0), seed=2)
    flipped = Volume(np.ascontiguousarray(phantom.hu[:, :, ::-1]).astype(np.float32), phantom.spacing,
                     (-phantom.origin[0], phantom.origin[1], phantom.origin[2]),
                     (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    result = model.run(flipped, no_progress)
    truth = phantom.lungs[:, :, ::-1]
    for label in (1, 2):
        assert dice(result.labels == label, truth == label) >= 0.97


def test_progress_is_reported_and_can_cancel(model):
    phantom = make_phantom(seed=0)
    stages = []
    model.run(phantom_volume(phantom), lambda stage, fraction: stages.append((stage, fraction)))
    assert len(stages) >= 4 and all(0.0 <= f <= 1.0 for _, f in stages)

    def cancel(stage, fraction):
        raise InterruptedError("cancelled")
    with pytest.raises(InterruptedError):
        model.run(phantom_volume(phantom), cancel)


def test_abdominal_ct_lung_bases_match_the_reference(model):
    image = sitk.ReadImage(str(CT_SAMPLES / "totalseg_abdomen_ct_3mm.nii.gz"))
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(CT_SAMPLES / "totalseg_abdomen_ct_3mm_seg.nii.gz")))
    result = model.run(volume_of(image), no_progress)
    right, left = (reference >= 12) & (reference <= 14), (reference == 10) | (reference == 11)
    assert dice(result.labels > 0, right | left) >= 0.96
    assert dice(result.labels == 1, right) >= 0.95 and dice(result.labels == 2, left) >= 0.94


def test_chest_ct_lung_volumes_are_plausible(model):
    image = sitk.ReadImage(str(CT_SAMPLES / "chest_ct_4dct_phase00_3mm.nii.gz"))
    report = model.run(volume_of(image), no_progress).report["lungs"]
    assert 2500 < report["right_ml"] < 3500 and 2000 < report["left_ml"] < 3000
    assert report["right_ml"] > report["left_ml"]


def test_abdomen_without_lungs_gives_no_lungs(model):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(CT_SAMPLES / "totalseg_abdomen_dicom_j2k")))
    result = model.run(volume_of(reader.Execute()), no_progress)
    assert result.report["lungs"]["right_ml"] + result.report["lungs"]["left_ml"] < 20


def test_lungs_cut_by_a_tight_field_of_view_are_kept(model):
    """The cropped CTA: both lungs touch the image edge; they are lung-dense, not outside air."""
    image = sitk.ReadImage(str(CT_SAMPLES / "totalseg_chest_cta_crop.nii.gz"))
    volume = volume_of(image)
    result = model.run(volume, no_progress)
    assert result.report["lungs"]["right_ml"] > 300 and result.report["lungs"]["left_ml"] > 300
    centres = {label: volume.voxel_to_world(np.argwhere(result.labels == label).mean(axis=0))
               for label in (1, 2)}
    assert centres[1][0] < centres[2][0]  # the right lung lies at smaller LPS x
