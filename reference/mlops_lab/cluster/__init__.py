"""The cluster path seen from code: the kind cluster from the laptop, and the small in-cluster jobs."""
