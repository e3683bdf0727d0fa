"""What the scripts in eval/ share: the machine and its load, results JSON, process memory, latency percentiles,
the offline data sets, and one child process per configuration.

The scripts run as ``python eval/<script>.py``, which puts eval/ first on ``sys.path``: they import these modules as
``benchkit.<module>``. The modules import each other relatively, so tests import them as ``eval.benchkit.<module>``
from the repository root. Nothing here is part of the installed package: embedkit itself never imports it.
"""
