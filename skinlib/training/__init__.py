"""Training: the stage-1 U-Net (`unet`, `ship_unet`) and the stage-2 classifier (`classifier`, its recipe as data
in `recipe`, the frozen-backbone feature cache in `features`). Each run writes a resumable folder."""

from .unet import UNetConfig, export_unet, load_segmentation_data, train_unet

__all__ = ["UNetConfig", "export_unet", "load_segmentation_data", "train_unet"]
