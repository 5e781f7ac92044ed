"""Run one fuzz target under atheris (libFuzzer): ``python -m fuzz.worker TARGET [libFuzzer args]``.

The ``sco_settle`` package (and the targets) are imported inside ``atheris.instrument_imports``,
so libFuzzer's coverage counters see every branch of our code; third-party libraries (lxml,
ruamel.yaml, pydantic-core) are not instrumented. libFuzzer's own flags follow the target name
(``-runs``, ``-seed``, ``-timeout``, ``-max_len``, ``-artifact_prefix``, corpus directories);
``fuzz/run.py`` chooses them and reads what libFuzzer prints. A target with a structure-aware
mutator (``fuzz/mutators.py``) uses it for half of its mutations.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]  # no stubs published

from fuzz.mutators import MUTATORS


def main() -> None:
    name = sys.argv[1]
    # The target is made inside the block too: the modules it imports lazily (the server's) are
    # instrumented as well.
    with atheris.instrument_imports(include=["sco_settle", "fuzz.targets"]):
        from fuzz.targets import TARGETS

        target = TARGETS[name]()
    options = {}
    if name in MUTATORS:
        mutator = MUTATORS[name]

        def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
            return mutator(data, max_size, seed, atheris.Mutate)

        options["custom_mutator"] = custom_mutator
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target, **options)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
