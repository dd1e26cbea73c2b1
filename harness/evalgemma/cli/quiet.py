"""What the CLI keeps off the terminal: progress bars on request, library noise always.

Libraries read their progress-bar switches from the environment when they are first
imported: tqdm's ``TQDM_DISABLE`` (every plain ``tqdm`` bar, e.g. mteb's "Matching
sentences"), huggingface_hub's ``HF_HUB_DISABLE_PROGRESS_BARS`` (read by transformers too:
"Loading weights") and datasets' ``HF_DATASETS_DISABLE_PROGRESS_BARS`` ("Standardizing text
corpus format", "Generating test split"). The CLI sets them before it imports any of those
libraries, so they also reach Ray workers and other child processes. sentence-transformers'
encode bars follow ``show_progress_bar``, which the encoder passes on.
"""

from __future__ import annotations

import os
import sys
import warnings

#: Environment switches that turn every library's progress bars off (see the module docstring).
PROGRESS_ENV: dict[str, str] = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}

#: Library warnings that say nothing the user can act on: (category, message regex, module regex, why).
#: A filter names the library it silences, so evalgemma's own warnings and every other
#: library's warnings still show.
NOISE_FILTERS: tuple[tuple[type[Warning], str, str, str], ...] = (
    (UserWarning, r"To copy construct from a tensor", r"mteb(\.|$)",
     "torch, for mteb's bitext evaluator calling torch.tensor() on a tensor (mteb/_evaluators/text/bitext_mining_evaluator.py)"),
    (FutureWarning, r"", r"mteb(\.|$)", "mteb's own deprecation notices about its API, not about the user's run"),
    (FutureWarning, r"", r"datasets(\.|$)", "datasets' deprecation notices about its API, raised while mteb loads data"),
)


def disable_progress_bars() -> None:
    """Turn off the progress bars of tqdm, huggingface_hub, transformers and datasets.

    Sets the environment switches for libraries not imported yet (and for child processes),
    and calls the libraries' own switches for those already imported.
    """
    os.environ.update(PROGRESS_ENV)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars as hub_off  # type: ignore[attr-defined]

        hub_off()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    if "tqdm" in sys.modules:
        # tqdm read TQDM_DISABLE at import; apply it the way tqdm's own env override does
        # (a partialmethod default on __init__, which an explicit ``disable=`` still overrides).
        from functools import partialmethod

        import tqdm.std

        init = vars(tqdm.std.tqdm)["__init__"]
        if not (isinstance(init, partialmethod) and init.keywords.get("disable") is True):
            tqdm.std.tqdm.__init__ = partialmethod(init, disable=True)


def filter_library_noise() -> None:
    """Hide the warnings in ``NOISE_FILTERS``, unless the user chose warning filters (``-W``,
    ``PYTHONWARNINGS``), as the ``warnings`` documentation recommends."""
    if sys.warnoptions:
        return
    for category, message, module, _why in NOISE_FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
