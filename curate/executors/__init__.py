"""Executors run a stage's batch function over a whole table of document rows: ``local`` (datasets.map) or
``ray`` (Ray Data). ``find_candidate_pairs`` is the one part of a global ``decide`` phase that an executor
spreads out: MinHash band keys grouped per band, on the driver (local) or in Ray tasks (ray)."""

from curate.executors.local import run_batch_function

ACTIVE = {"executor": "local"}  # set by the step that runs a stage's decide phase


def find_candidate_pairs(sigs, bands: int, rows: int):
    from curate.stages.minhash import candidate_pairs

    if ACTIVE["executor"] == "ray":
        from curate.executors.ray_executor import candidate_pairs_ray

        return candidate_pairs_ray(sigs, bands, rows)
    return candidate_pairs(sigs, bands, rows)


__all__ = ["ACTIVE", "find_candidate_pairs", "run_batch_function"]
