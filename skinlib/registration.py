"""`import skinlib` makes skinlib's Keras layers known to `keras.saving.load_model`, without importing Keras.

A `.keras` file names each custom layer ("skinlib>ChannelAttention", "skinlib>LesionCrop", ...), and Keras finds
it only among classes registered with `keras.saving.register_keras_serializable` before the file is read. Those
classes live in modules that import Keras, and `import skinlib` must stay light (`skinlib --help`, the data
commands and `skinlib check-data` never load TensorFlow). So:

- if Keras is already imported, `import skinlib` imports the layer modules at once;
- otherwise it leaves a one-shot hook on `sys.meta_path` that imports them right after Keras itself has been
  imported (by anyone), and then removes itself.

Either way `import skinlib, keras; keras.saving.load_model("skin.keras")` works, in either order of the imports.
`register_layers()` does it explicitly.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings

#: The modules whose import registers every custom layer a skinlib model or export can contain.
LAYER_MODULES = ("skinlib.models.attention", "skinlib.models.colour_constancy", "skinlib.export")


def register_layers() -> None:
    """Import the layer modules (their decorators register the classes with Keras)."""
    for name in LAYER_MODULES:
        importlib.import_module(name)


class _RegisteringLoader:
    """Keras' own loader, plus `register_layers()` once the `keras` module has run."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            register_layers()
        except Exception as error:  # never break `import keras` itself
            warnings.warn(
                f"skinlib could not register its Keras layers ({error}); call "
                "skinlib.registration.register_layers() before keras.saving.load_model",
                RuntimeWarning,
                stacklevel=2,
            )

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: Keras' loader answers
        return getattr(self._loader, name)


class _AfterKerasImport:
    """A meta-path finder that only wraps the loader of the top-level `keras` module, once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("keras")  # the real one, found by the finders after this one
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec

    def invalidate_caches(self):
        pass


def _remove_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterKerasImport)]


def register_when_keras_loads() -> None:
    """Register now if Keras is imported, else as soon as it is (see the module docstring)."""
    if "keras" in sys.modules:
        register_layers()
    elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
