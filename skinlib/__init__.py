"""skinlib: segment a dermoscopic lesion, then classify it (HAM10000, 7 classes)."""

__version__ = "0.1.0"


def _quiet_tensorflow_retracing_notice() -> None:
    # TensorFlow prints a paragraph whenever a predict function is traced for a new batch shape, which
    # skinlib's one-image and last-partial-batch calls do by design; only that notice is filtered
    # (skinlib.models.inference.quiet_retracing_notice), every other TensorFlow warning stays.
    from .models.inference import quiet_retracing_notice

    quiet_retracing_notice()


_quiet_tensorflow_retracing_notice()
