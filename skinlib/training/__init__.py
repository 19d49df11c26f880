"""Training loops: `unet` for stage 1, `classifier` for stage 2. Each writes a resumable run folder."""

from .unet import UNetConfig, export_unet, load_segmentation_data, train_unet

__all__ = ["UNetConfig", "export_unet", "load_segmentation_data", "train_unet"]
