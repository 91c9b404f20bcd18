"""Lab 1, exercise `model-holder`: hot reload with an atomic swap that survives a failed load.

    make lab-1        grade it          make hint-1      one more hint
    Reference: reference/mlops_lab/serving/holder.py     Docs: docs/labs/lab-1-serving.md
    Run yours: mlops-lab serve --impl exercises           (the server then uses this holder)

The server scores every request with `holder.current`. The reference `ModelHolder`, which
yours extends, runs the polling thread: every `reload_poll_s` seconds it calls your `refresh()`
(and /admin/reload calls `refresh(force=True)`), one call at a time. You write `refresh`. What
it works with (set up by the reference class):

    self.current            the LoadedModel requests are scored with (None until the first load)
    self.not_ready_reason   why /readyz answers 503 (None once a model is loaded)
    self.last_error         the last failed load, as failure_message(exc) words it, for /v1/model
    self.load_failures      how many loads failed
    self.alias_moved()      True when the registry's alias points at a model other than current
                            (or none is loaded yet); raises when the registry does not answer
    self.loader(self.settings, self.alias)   loads, checks and warms a model; raises on failure
    self.on_load, self.on_failure            callbacks (may be None): the server's metrics
"""

from __future__ import annotations

from mlops_lab.serving import holder as reference
from mlops_lab.serving.holder import LoadedModel, LoadError, failure_message, load_version

__all__ = ["LoadError", "LoadedModel", "ModelHolder", "load_version"]


class ModelHolder(reference.ModelHolder):
    def refresh(self, force: bool = False) -> bool:
        """Load the alias's version if it moved (or if forced) and swap it in.
        True when a new model is in place."""
        # TODO(lab-1): decide whether to load, load, and put the new model in place.
        #  Contract:
        #  - requests see the old model or the new one, never a half-loaded one and never None
        #    once a model has been served;
        #  - a failure (the alias check or the load, whatever the exception) keeps the old model
        #    serving and never escapes: it is counted, its failure_message(exc) is kept in
        #    last_error and passed to on_failure; not_ready_reason explains it only while no
        #    model is loaded at all;
        #  - a success clears not_ready_reason and last_error and is passed to on_load.
        #  Think: a load takes seconds while requests keep reading self.current. When exactly may
        #  self.current change?
        raise NotImplementedError("TODO(lab-1): the decision and the atomic swap")
