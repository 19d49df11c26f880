"""skinlib: segment a dermoscopic lesion, then classify it (HAM10000, 7 classes)."""

from .models.inference import quiet_retracing_notice as _quiet_retracing_notice

__version__ = "0.1.0"

# TensorFlow prints a paragraph whenever a predict function is traced for a new batch shape, which
# skinlib's one-image and last-partial-batch calls do by design; only that notice is filtered, every
# other TensorFlow warning stays (skinlib.models.inference).
_quiet_retracing_notice()

# skinlib's Keras layers (attention, colour constancy, the export's layers) are registered for
# keras.saving.load_model as soon as Keras is imported, without importing it here (skinlib.registration).
from .registration import register_when_keras_loads as _register_when_keras_loads  # noqa: E402  (after the notice filter)

_register_when_keras_loads()
