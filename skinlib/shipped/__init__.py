"""The shipped models and study results, inside the package so that a wheel carries them.

`skinlib predict` works from any folder because these paths resolve inside the installed package, not
inside a checkout. Retraining writes here only when you run it from the repository root.
"""

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent
CLASSIFIER = SHIPPED / "classifier"
UNET = SHIPPED / "unet"
ABLATION_RESULTS = SHIPPED / "ablation.json"
COLOUR_CAST_RESULTS = SHIPPED / "colour_casts.json"
SHIFT_BATTERY_RESULTS = SHIPPED / "shift_battery.json"
