"""Step 5: deploy. What happens around Tutor's own ``tutor k8s`` commands
(``lifecycle.py``: migrations first on upgrade, the rollout wait, prune, the
state's record) and the ``tutor eks`` commands' work on the cluster (check,
status, adopt, rbac). The decisions (why a pod is not right, whether a rollout
is done, what to prune, what status to show) are pure functions over objects
already read, tested from JSON fixtures in ``tests/deploy/``.
"""
