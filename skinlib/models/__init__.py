"""Keras 3 models: backbones, attention modules and the stage-2 classifier."""
