"""`python -m mlops_lab.cli ...` is `mlops-lab ...`: how the supervisor and the tests start it."""

from mlops_lab.cli import main

main()
