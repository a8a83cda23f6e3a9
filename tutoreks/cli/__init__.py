"""Step 6: the command line. ``tutor eks ...`` (``group.py``, one module per
command) and the ``tutor k8s quickstart`` alias (``quickstart.py``).

Nothing is imported here: every ``tutor`` command imports the plugin, which
registers a lazy group that loads ``group.py`` when ``tutor eks ...`` runs.
"""
