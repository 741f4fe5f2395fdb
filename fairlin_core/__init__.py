"""FairLin engine: audit and mitigate the fairness cost of ReLU linearization for private inference.

This package never imports streamlit; the dashboard (``app.py``, ``pages/``) and the CLI
(``python -m fairlin_core``) are thin layers over it.
"""

__version__ = "0.1.0"
