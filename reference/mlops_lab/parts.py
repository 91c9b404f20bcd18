"""Whose code plays a part of the system: the one type every seam takes.

    python -c "from mlops_lab.labs.impl import part_of; print(part_of('reference')('mlops_lab.data.io'))"

A `Part` maps a reference module name ("mlops_lab.monitoring.policy") to the module that plays
it: the reference module itself (`importlib.import_module`, every default), or the learner's
exercise file that mirrors it (mlops_lab.labs.impl.part_of builds those). Code that runs a
learner's part takes a Part and never imports the labs layer.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

Part = Callable[[str], ModuleType]
