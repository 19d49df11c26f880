"""The models at run time: the stage-2 classifier (`StageTwo`), the dual-stage pipeline (`DualStage`) and the
test-time augmentation views (`views.Views`). What `predict`, `evaluate`, the notebooks and the post-hoc fits load."""

from .classifier import DEFAULT_CLASSIFIER, UNCERTAIN_BELOW, StageTwo
from .dual_stage import DualStage
from .views import Views

__all__ = ["DEFAULT_CLASSIFIER", "UNCERTAIN_BELOW", "DualStage", "StageTwo", "Views"]
