"""A solution of lab 1's `model-holder` (exercises/lab1/holder.py), and why it is written so.

The self-check grades it (every check passes) and grades each mistake of
labs/mutants/lab1/model-holder.toml applied to it (a check must fail on each).
"""

from __future__ import annotations

from mlops_lab.serving import holder as reference
from mlops_lab.serving.holder import LoadedModel, LoadError, failure_message, load_version

__all__ = ["LoadError", "LoadedModel", "ModelHolder", "load_version"]


class ModelHolder(reference.ModelHolder):
    def refresh(self, force: bool = False) -> bool:
        """Load the alias's version if it moved (or if forced) and swap it in.
        True when a new model is in place."""
        # The alias check and the load share one try: a registry that does not answer the check
        # is as much a failed load as a corrupt artifact, and neither may escape to the poller.
        try:
            if not force and not self.alias_moved():
                return False  # nothing new: a poll must not pay seconds and memory for a reload
            # Into a local first: the load takes seconds, and requests keep reading
            # self.current meanwhile; they must see the old model, not a half-loaded one.
            loaded = self.loader(self.settings, self.alias)
        except Exception as exc:  # whatever went wrong, the old model keeps serving
            message = failure_message(exc)
            self.load_failures += 1  # counted: the server's metrics and /v1/model show it
            self.last_error = message
            if self.current is None:
                # Only then is the server not ready; with a model, /readyz stays 200.
                self.not_ready_reason = f"no model loaded: {message}"
            if self.on_failure:
                self.on_failure(message)
            return False
        # One reference assignment is the atomic swap: a request sees the old or the new model.
        self.current = loaded
        self.not_ready_reason = None
        self.last_error = None
        if self.on_load:
            self.on_load(loaded)
        return True
