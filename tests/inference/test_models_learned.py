"""The learned path: weight files made here (small random networks, as state dict and as
TorchScript) are loaded by the real loading code and run on a small phantom."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dss_client.phantom import make_phantom
from dss_inference.imageio import Volume
from dss_inference.models import ModelLoadError, load_models
from dss_inference.models.networks import CandidateNet, UNet3D


def settings(lung=None, nodule=None):
    return SimpleNamespace(device="cpu", lung_model_weights=lung and str(lung),
                           nodule_model_weights=nodule and str(nodule))


@pytest.fixture(scope="module")
def volume():
    phantom = make_phantom(shape=(40, 64, 64), spacing=(5.0, 5.0, 5.0), seed=1, nodules=(20.0, 25.0),
                           juxta_pleural=0, irregular=0)
    return Volume(phantom.hu.astype(np.float32), phantom.spacing, phantom.origin, phantom.direction)


def save_weights(tmp_path, network, name, scripted):
    torch.manual_seed(0)
    path = tmp_path / name
    if scripted:
        torch.jit.save(torch.jit.script(network.eval()), str(path))
    else:
        torch.save(network.state_dict(), path)
    return path


def no_progress(stage, fraction):
    pass


def test_without_weights_the_classical_pipelines_load():
    models = load_models(settings())
    assert set(models) == {"lung_segmentation", "nodule_detection"}
    assert {m.kind for m in models.values()} == {"classical"}
    assert all(m.device == torch.device("cpu") for m in models.values())


@pytest.mark.parametrize("scripted", [False, True], ids=["state_dict", "torchscript"])
def test_learned_lung_model_keeps_geometry_and_labels(tmp_path, volume, scripted):
    path = save_weights(tmp_path, UNet3D(channels=4, depth=2), "lungs.pt", scripted)
    model = load_models(settings(lung=path))["lung_segmentation"]
    assert model.kind == "learned"
    result = model.run(volume, no_progress)
    assert result.labels.shape == volume.hu.shape and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert set(result.report["lungs"]) == {"right_ml", "left_ml"}


def test_state_dict_with_config_sets_patch_and_spacing(tmp_path, volume):
    network = UNet3D(channels=4, depth=2)
    path = tmp_path / "lungs.pt"
    torch.save({"state_dict": network.state_dict(), "config": {"patch": 16, "spacing_mm": 10.0}}, path)
    model = load_models(settings(lung=path))["lung_segmentation"]
    assert model.config["patch"] == 16
    assert model.run(volume, no_progress).labels.shape == volume.hu.shape


@pytest.mark.parametrize("scripted", [False, True], ids=["state_dict", "torchscript"])
def test_learned_nodule_model_rescores_candidates(tmp_path, volume, scripted):
    path = save_weights(tmp_path, CandidateNet(channels=4), "nodules.pt", scripted)
    model = load_models(settings(nodule=path))["nodule_detection"]
    assert model.kind == "learned"
    result = model.run(volume, no_progress)
    nodules = result.report["nodules"]
    assert result.labels.shape == volume.hu.shape and result.labels.dtype == np.uint16
    assert nodules, "the classical candidates should reach the classifier"
    assert [n["label"] for n in nodules] == list(range(1, len(nodules) + 1))
    assert [n["score"] for n in nodules] == sorted((n["score"] for n in nodules), reverse=True)
    assert all(0.0 <= n["score"] <= 1.0 for n in nodules)
    assert set(np.unique(result.labels)) == set(range(len(nodules) + 1))


def test_wrong_weight_files_give_clear_errors(tmp_path):
    missing = tmp_path / "absent.pt"
    with pytest.raises(ModelLoadError, match="no such file"):
        load_models(settings(lung=missing))
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(ModelLoadError, match="LUNG_MODEL_WEIGHTS"):
        load_models(settings(lung=text))
    swapped = tmp_path / "swapped.pt"
    torch.save(CandidateNet(channels=4).state_dict(), swapped)
    with pytest.raises(ModelLoadError, match="not usable as the lung model"):
        load_models(settings(lung=swapped))
    with pytest.raises(ModelLoadError, match="NODULE_MODEL_WEIGHTS"):
        load_models(settings(nodule=text))
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": {"encoders.0.0.weight": object()}}, pickled)
    with pytest.raises(ModelLoadError):
        load_models(settings(lung=pickled))


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelLoadError, match="no GPU"):
        load_models(SimpleNamespace(device="cuda", lung_model_weights=None, nodule_model_weights=None))
