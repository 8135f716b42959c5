"""Example DSS service: the voxels brighter than the image's mean plus the ticket's `offset`
parameter become label 1. Run it with `dss serve services/example-threshold/threshold.py:run`."""
import SimpleITK as sitk

from dss_client.sdk import Result, service

LABELS = {1: ("bright", (255, 200, 0))}


@service("ExampleThreshold", version="1.1.0")
def run(ctx, workspace):
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(ctx.image)))
    ctx.progress(0.5, "Thresholding at the mean intensity")
    threshold = float(image.mean()) + ctx.params["offset"]   # typed, default filled in
    mask = image > threshold
    if ctx.cancelled():   # deleted by its user meanwhile: stop early
        return Result()
    report = {"threshold": threshold, "voxels": int(mask.sum())}
    return (Result(f"{report['voxels']} voxels above {threshold:.1f}.")
            .add_segmentation(mask, LABELS, name="Bright")
            .add_report("threshold.json", report, "Threshold report"))
