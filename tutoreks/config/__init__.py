"""Step 2: resolve the layered configuration. The Kubernetes Secrets
(``secrets.py``) and the state Secret (``state.py``) are read once per command
(``context.py``) and resolved with the environment into a typed ``Resolution``
(``resolve.py``, ``values.py``); ``instances.py`` says whether a namespace runs
another Tutor instance; ``masking.py`` keeps the values out of every output.
"""
