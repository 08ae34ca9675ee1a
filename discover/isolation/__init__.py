"""Isolation of untrusted candidate programs, split by process.

- ``executor``: the engine's pool of workers (``LocalExecutor``, ``Job``, ``evaluate_isolated``);
- ``worker_process``: the engine's handle of one worker (start, send a job, wait, judge);
- ``worker``: the worker process itself (``python -m discover.isolation.worker``);
- ``wire``: the frames between them;
- ``sandbox``: resource limits and kernel confinement (network namespace, Landlock, seccomp);
- ``audit``: the audit hook that polices candidate code, and the after-job checks.
"""
