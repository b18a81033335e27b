"""appliance: one GPU workstation as a well-run local LLM service.

Keep this module import-free: the CLI's start-up path, the simulated engine (stdlib only, runs in a bare
python image) and the core all import through it.
"""

__version__ = "0.1.0"
