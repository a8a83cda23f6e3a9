"""Step 3: render. What the plugin adds to what Tutor renders into ``env/``:
the settings (``settings.py``, ``services.py``), the manifests and the edge
(``manifests.py``, ``edge.py``, ``workloads.py``), kustomize patches
(``kustomize.py``), the admin user and the task scripts (``admin.py``,
``tasks.py``), and the record of what was rendered (``record.py``).
"""
