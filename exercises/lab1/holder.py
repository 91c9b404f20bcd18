"""Lab 1, exercise `model-holder`: hot reload with an atomic swap that survives a failed load.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/holder.py     Docs: docs/labs/lab-1-serving.md
    Run yours: mlops-lab serve --impl exercises           (uses your app.py and this holder)

The server asks the holder for `holder.current` on every request. The holder loads
`models:/fraud-detector@<alias>` in a background thread (loading is written: `load_version`
resolves the alias, loads, compiles and warms the model) and reloads when the alias moves.
You write `refresh`: what happens when a load succeeds, and when it fails.
"""

from __future__ import annotations

import logging

from mlops_lab.lifecycle.tracking import client_for, version_by_alias
from mlops_lab.serving import holder as reference
from mlops_lab.serving.holder import LoadedModel, LoadError, load_version

log = logging.getLogger(__name__)

__all__ = ["LoadError", "LoadedModel", "ModelHolder"]


class ModelHolder(reference.ModelHolder):
    """The reference holder with your `refresh`. What it keeps (set up in the reference __init__):

    current            the LoadedModel requests are scored with (None until the first load)
    not_ready_reason   why /readyz says 503 (None once a model is loaded)
    last_error         the last failed load, "<ExceptionClass>: <message>", for /v1/model
    load_failures      how many loads failed
    _loader, _on_load, _on_failure, _lock, _client   as passed in / internal
    """

    def alias_moved(self) -> bool:
        """True when the registry's alias points at another version than the one being served."""
        if self.current is None:
            return True
        self._client = self._client or client_for(self.settings)
        mv = version_by_alias(self._client, self.settings.model_name, self.alias)
        # No alias (a finished canary clears @challenger) is not a reason to unload anything.
        return mv is not None and str(mv.version) != self.current.version

    def refresh(self, force: bool = False) -> bool:
        """Load the alias's version if it moved (or if forced). True when a new model is in place."""
        with self._lock:
            if not force and not self.alias_moved():
                return False
            # TODO(lab-1): load with self._loader(self.settings, self.alias) and swap it in.
            #  - success: the new model replaces self.current in ONE assignment (requests see the
            #    old or the new model, never a half-loaded one); clear not_ready_reason and
            #    last_error; call self._on_load(model) when set; return True.
            #  - any exception: the old model keeps serving. Count it (load_failures), keep
            #    "<ExceptionClass>: <message>" in last_error, set not_ready_reason only when no
            #    model is loaded at all, call self._on_failure(message) when set; return False.
            raise NotImplementedError("TODO(lab-1): the atomic swap")

    def _poll(self) -> None:
        # Until a model is loaded retry quickly (the registry may just be starting), then poll.
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # the registry may be down: keep polling
                self._client = None
                log.warning("alias check for @%s failed: %s", self.alias, exc)
            wait = (
                self.settings.reload_poll_s
                if self.current is not None
                else min(1.0, self.settings.reload_poll_s)
            )
            self._stop.wait(wait)
