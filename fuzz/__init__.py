"""Coverage-guided fuzzing of SCO Settle's input edges (issue 12, section 5).

``fuzz/targets.py`` holds the four targets as plain functions of ``bytes`` (no atheris needed to
run one input: the regression tests in ``tests/fuzz`` do exactly that); ``fuzz/worker.py`` runs one
target under atheris (libFuzzer); ``fuzz/run.py`` starts a worker and prints its figures as JSON.
See docs/fuzzing-and-soak.md.
"""
